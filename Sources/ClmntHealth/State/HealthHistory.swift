import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How big `health-history.jsonl` may grow.
///
/// When the next line would take the live file past `maxBytes`, it becomes
/// `health-history.jsonl.1` (the previous `.1` is first folded into
/// `health-history-totals.json`, so all-time counts survive). The retained
/// history is therefore always at least `maxBytes` less one line: at the
/// default 2 MiB and about 120 bytes a line, some 17,000 checks, which is 59
/// days at a 5-minute interval (and 30 days at down to 2.5 minutes). At most
/// `2 × maxBytes` are kept per molt, and read.
public struct HistoryPolicy: Sendable {
    public var maxBytes: Int

    public init(maxBytes: Int = 2 * 1024 * 1024) { self.maxBytes = maxBytes }
}

/// Counts of checks that rotated out of the retained history.
public struct ArchivedTotals: Sendable, Equatable {
    public var since: Date?
    public var until: Date?
    public var checks = 0
    public var healthy = 0
    public var responseCount = 0
    public var responseSumMs = 0.0

    public init() {}

    mutating func add(_ record: HealthRecord) {
        since = min(since ?? record.timestamp, record.timestamp)
        until = max(until ?? record.timestamp, record.timestamp)
        checks += 1
        if record.status.isHealthy {
            healthy += 1
            if let time = record.responseTimeMs {
                responseCount += 1
                responseSumMs += time
            }
        }
    }

    var json: JSONOutput {
        .object([("since", .optional(since)), ("until", .optional(until)), ("checks", .int(checks)),
                 ("healthy", .int(healthy)), ("response_count", .int(responseCount)),
                 ("response_sum_ms", .double(responseSumMs))])
    }

    init(lenient object: LenientObject) {
        since = object.date("since")
        until = object.date("until")
        checks = max(0, object.int("checks") ?? 0)
        healthy = min(checks, max(0, object.int("healthy") ?? 0))
        responseCount = max(0, object.int("response_count") ?? 0)
        responseSumMs = max(0, object.double("response_sum_ms") ?? 0)
    }
}

/// What the history files hold.
public struct LoadedHistory: Sendable {
    /// Retained checks, oldest first.
    public var records: [HealthRecord]
    public var archived: ArchivedTotals?
    public var warnings: [String]
}

/// `health-history.jsonl`: one JSON line per check, appended, bounded by `HistoryPolicy`.
public struct HealthHistory: Sendable {
    public let directory: StateDirectory
    public let policy: HistoryPolicy

    public static let rotatedName = StateDirectory.historyName + ".1"

    public var path: String { directory.historyPath }
    public var rotatedPath: String { directory.display(Self.rotatedName) }
    public var totalsPath: String { directory.display(StateDirectory.totalsName) }

    /// Appends one line, rotating first when it would take the file past `maxBytes`
    /// (so neither file ever holds more). Callers hold the state lock.
    public func append(_ record: HealthRecord) throws(HealthError) {
        let line = record.json(includeNullDetail: false).compact
        if let size = try directory.size(of: StateDirectory.historyName), size > 0,
           size + line.utf8.count + 2 > policy.maxBytes {
            try rotate(liveSize: size)
        }
        try directory.appendLine(line, name: StateDirectory.historyName)
    }

    /// `.1` is folded into the totals and replaced by the live file. A live file
    /// larger than `maxBytes` (grown by something other than clmnt) keeps only its
    /// newest `maxBytes` of whole lines: the cap holds whatever was written.
    func rotate(liveSize: Int) throws(HealthError) {
        var warnings: [String] = []
        if try directory.size(of: Self.rotatedName) != nil {
            var totals = readTotals(warnings: &warnings) ?? ArchivedTotals()
            for record in readRecords(Self.rotatedName, warnings: &warnings) { totals.add(record) }
            try directory.writeAtomically(totals.json.pretty, name: StateDirectory.totalsName)
        }
        if liveSize <= policy.maxBytes {
            try directory.rename(StateDirectory.historyName, to: Self.rotatedName)
        } else {
            let tail = try directory.tail(of: StateDirectory.historyName, maxBytes: policy.maxBytes)
            try directory.writeAtomically(tail?.data ?? Data(), name: Self.rotatedName)
            try directory.remove(StateDirectory.historyName)
        }
    }

    public func load() -> LoadedHistory {
        var warnings: [String] = []
        var records = readRecords(Self.rotatedName, warnings: &warnings)
        records += readRecords(StateDirectory.historyName, warnings: &warnings)
        // Manual checks and cron runs may interleave; order by time (stable for equal times).
        if zip(records, records.dropFirst()).contains(where: { $0.timestamp > $1.timestamp }) {
            records = records.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }
                .map(\.element)
        }
        return LoadedHistory(records: records, archived: readTotals(warnings: &warnings), warnings: warnings)
    }

    func readTotals(warnings: inout [String]) -> ArchivedTotals? {
        let data: Data?
        do { data = try directory.contents(of: StateDirectory.totalsName) } catch {
            warnings.append(error.description)
            return nil
        }
        guard let data else { return nil }
        guard let object = LenientObject(data: data) else {
            warnings.append("ignoring \(totalsPath): corrupt; all-time figures cover the retained history only")
            return nil
        }
        return ArchivedTotals(lenient: object)
    }

    /// Every parsable line of the newest `maxBytes` of `name`; corrupt or
    /// half-written lines are skipped and counted in one warning, and so is
    /// anything older in a file that outgrew the cap.
    func readRecords(_ name: String, warnings: inout [String]) -> [HealthRecord] {
        let file = directory.display(name)
        let read: (data: Data, skipped: Int)?
        do { read = try directory.tail(of: name, maxBytes: policy.maxBytes) } catch {
            warnings.append(error.description)
            return []
        }
        guard let (data, skippedBytes) = read else { return [] }
        if skippedBytes > 0 {
            warnings.append("read only the newest \(policy.maxBytes) bytes of \(file); \(skippedBytes) older bytes are beyond the history cap")
        }
        guard !data.isEmpty else { return [] }
        var records: [HealthRecord] = []
        var skipped = 0, firstSkipped = 0, lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            if let object = LenientObject(data: Data(line)), let record = HealthRecord(lenient: object) {
                records.append(record)
            } else {
                skipped += 1
                if firstSkipped == 0 { firstSkipped = lineNumber }
            }
        }
        if skipped > 0 {
            warnings.append("skipped \(skipped) corrupt line\(skipped == 1 ? "" : "s") in \(file) (first at line \(firstSkipped))")
        }
        return records
    }
}

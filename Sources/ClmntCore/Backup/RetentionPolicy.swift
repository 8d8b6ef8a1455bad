import Foundation

/// Which archives retention keeps, as restic's `forget` says it (`--keep-last`,
/// `--keep-daily`, `--keep-weekly`, `--keep-monthly`); the rules are a union:
/// an archive one rule keeps stays.
///
/// - `last N` (`--keep N`): the N newest archives;
/// - `daily N`: the newest archive of each of the last N days that have archives;
/// - `weekly N`: the same per ISO week (Monday to Sunday);
/// - `monthly N`: the same per calendar month.
///
/// Days, weeks and months are those of the host's time zone, and an archive's
/// time is its manifest's `timestamp` (when the backup started), never its mtime.
public struct RetentionPolicy: Sendable, Equatable, Codable {
    public var last: Int?
    public var daily: Int?
    public var weekly: Int?
    public var monthly: Int?

    public init(last: Int? = nil, daily: Int? = nil, weekly: Int? = nil, monthly: Int? = nil) {
        self.last = last
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
    }

    /// No rule given: retention is off (and `fleet prune` refuses to guess one).
    public var isEmpty: Bool { last == nil && daily == nil && weekly == nil && monthly == nil }

    /// The rules in order, with their flag.
    var rules: [(rule: RetentionRule, flag: String, count: Int)] {
        let all: [(RetentionRule, String, Int?)] = [(.last, "--keep", last), (.daily, "--keep-daily", daily),
                                                    (.weekly, "--keep-weekly", weekly), (.monthly, "--keep-monthly", monthly)]
        return all.compactMap { entry in entry.2.map { (rule: entry.0, flag: entry.1, count: $0) } }
    }

    /// Every count must be 1 or more: 0 would keep nothing by that rule, which is what leaving the flag out says.
    public func validate() throws(BackupError) {
        for (rule, flag, count) in rules where count < 1 {
            let hint = rule == .last ? " (the new archive counts as one)" : ""
            throw .invalidOption("invalid \(flag) \(count): give 1 or more\(hint)")
        }
        for (_, flag, count) in rules where count > Self.maximum {
            throw .invalidOption("invalid \(flag) \(count): give at most \(Self.maximum)")
        }
    }

    /// Larger counts are a typo, not a policy (100 years of dailies).
    public static let maximum = 36_500

    /// The flags that give this policy, for the scheduled job's line: `--keep 7 --keep-daily 7`.
    public var arguments: [String] { rules.flatMap { [$0.flag, String($0.count)] } }

    /// `7 newest, 7 daily, 4 weekly, 12 monthly`
    public var summary: String {
        rules.map { $0.rule == .last ? "\($0.count) newest" : "\($0.count) \($0.rule.rawValue)" }.joined(separator: ", ")
    }

    enum CodingKeys: String, CodingKey {
        case last = "keep"
        case daily = "keep_daily"
        case weekly = "keep_weekly"
        case monthly = "keep_monthly"
    }
}

/// One rule of a `RetentionPolicy`.
enum RetentionRule: String {
    case last, daily, weekly, monthly
}

/// An archive retention decides about.
public struct RetentionCandidate: Sendable, Equatable {
    /// The file name inside the backup directory.
    public var name: String
    /// The manifest's timestamp (`2026-11-29T03:15:00Z`).
    public var timestamp: String
    /// The file's mtime: breaks ties between archives of the same second.
    public var modified: Double
    /// From the archive's `BackupStatusMark`: false when the backup missed files, nil when it has no mark.
    public var complete: Bool?
    /// The file's size, for what a prune frees.
    public var sizeBytes: Int64
    /// Why its timestamp may not rank it (in the future, far from its mtime); nil: trusted.
    public var untrustedDate: String?

    public init(name: String, timestamp: String, modified: Double = 0, complete: Bool? = true, sizeBytes: Int64 = 0,
                untrustedDate: String? = nil) {
        self.name = name
        self.timestamp = timestamp
        self.modified = modified
        self.complete = complete
        self.sizeBytes = sizeBytes
        self.untrustedDate = untrustedDate
    }

    /// When the backup started; a timestamp that does not parse sorts as the oldest.
    var date: Date { Timestamp.parse(timestamp) ?? .distantPast }

    /// Only an archive known to be incomplete is set aside; one without a mark counts as complete.
    var isIncomplete: Bool { complete == false }
}

/// What retention does with one archive: kept (by the rules named), or removed.
public struct RetentionDecision: Sendable, Equatable {
    public var candidate: RetentionCandidate
    /// Why it stays (`newest 1`, `daily 2026-11-29`, `weekly 2026-W48`, `monthly 2026-11`, `the new archive`,
    /// `incomplete, ...`); empty: it goes.
    public var reasons: [String]
    public var keep: Bool { !reasons.isEmpty }
}

extension RetentionPolicy {
    /// Decides about every candidate; newest first.
    ///
    /// Complete archives fill the rules' slots. Incomplete ones (a backup that missed
    /// files, exit 3) never take a complete archive's slot: the same rules are applied to
    /// them on their own, and those they keep stay only while they are newer than the
    /// oldest complete archive kept (an older incomplete archive is superseded by a kept
    /// complete one). So a run of incomplete nights keeps the newest state of everything
    /// else, good archives are never pushed out by bad ones, and the directory stays
    /// bounded (at most twice the policy) even when every backup misses a file.
    ///
    /// `newArchive` (the backup just written) is always kept and counts as the newest,
    /// whatever its clock said.
    ///
    /// An archive whose date is not trusted (`untrustedDate`: in the future, or far from its
    /// mtime) is not ranked at all: it fills no slot, so it never pushes a trusted archive
    /// out, and it is kept (`date not trusted`), listed after the others, until removed by hand.
    public func decide(_ candidates: [RetentionCandidate], newArchive: String? = nil,
                       timeZone: TimeZone = .current) -> [RetentionDecision] {
        let unranked = candidates.filter { $0.untrustedDate != nil && $0.name != newArchive }.sorted { $0.name < $1.name }
        let sorted = candidates.filter { $0.untrustedDate == nil || $0.name == newArchive }.sorted { a, b in
            if (a.name == newArchive) != (b.name == newArchive) { return a.name == newArchive }
            return (a.date.timeIntervalSince1970, a.modified, a.name) > (b.date.timeIntervalSince1970, b.modified, b.name)
        }
        let calendar = RetentionCalendar(timeZone: timeZone)
        let complete = sorted.filter { !$0.isIncomplete }
        var reasons = apply(to: complete, calendar: calendar)
        let oldestKeptComplete = complete.lastIndex { reasons[$0.name] != nil }.map { complete[$0] }
        let incompleteReasons = apply(to: sorted.filter(\.isIncomplete), calendar: calendar)
        for (position, candidate) in sorted.enumerated() {
            guard let found = incompleteReasons[candidate.name] else { continue }
            if let oldest = oldestKeptComplete, let oldestPosition = sorted.firstIndex(of: oldest),
               position > oldestPosition { continue }
            reasons[candidate.name] = found.map { "incomplete, \($0)" }
        }
        if let newArchive, sorted.contains(where: { $0.name == newArchive }), reasons[newArchive] == nil {
            reasons[newArchive] = ["the new archive"]
        }
        return sorted.map { RetentionDecision(candidate: $0, reasons: reasons[$0.name] ?? []) }
            + unranked.map { RetentionDecision(candidate: $0, reasons: [Self.untrustedDateReason]) }
    }

    /// Why an archive whose date is not trusted stays.
    public static let untrustedDateReason = "date not trusted"

    /// restic's walk: newest first; a rule keeps an archive whose period differs from the
    /// last period it kept, until its count is used up. Returns name -> reasons.
    private func apply(to sortedNewestFirst: [RetentionCandidate], calendar: RetentionCalendar) -> [String: [String]] {
        var remaining = rules.map(\.count)
        var lastPeriod = [String?](repeating: nil, count: rules.count)
        var reasons: [String: [String]] = [:]
        for (index, candidate) in sortedNewestFirst.enumerated() {
            let date = candidate.date
            for (ruleIndex, entry) in rules.enumerated() where remaining[ruleIndex] > 0 {
                let period: String
                switch entry.rule {
                case .last: period = "\(index + 1)"
                case .daily: period = calendar.day(date)
                case .weekly: period = calendar.isoWeek(date)
                case .monthly: period = calendar.month(date)
                }
                guard period != lastPeriod[ruleIndex] else { continue }
                lastPeriod[ruleIndex] = period
                remaining[ruleIndex] -= 1
                reasons[candidate.name, default: []].append(entry.rule == .last ? "newest \(period)" : "\(entry.rule.rawValue) \(period)")
            }
        }
        return reasons
    }
}

/// Days, ISO weeks and months of dates, in one time zone (the host's, for admins).
struct RetentionCalendar {
    private var calendar: Calendar

    init(timeZone: TimeZone) {
        calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
    }

    private func civil(_ date: Date) -> (year: Int, month: Int, day: Int) {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return (parts.year ?? 1970, parts.month ?? 1, parts.day ?? 1)
    }

    /// `2026-11-29`
    func day(_ date: Date) -> String {
        let (year, month, day) = civil(date)
        return String(format: "%04d-%02d-%02d", year, month, day)
    }

    /// `2026-11`
    func month(_ date: Date) -> String {
        let (year, month, _) = civil(date)
        return String(format: "%04d-%02d", year, month)
    }

    /// `2026-W48`: ISO 8601 weeks run Monday to Sunday, and week 1 is the one with the
    /// year's first Thursday (so 2027-01-01, a Friday, is in 2026-W53).
    func isoWeek(_ date: Date) -> String {
        let (year, month, day) = civil(date)
        let (isoYear, week) = Self.isoWeek(year: year, month: month, day: day)
        return String(format: "%04d-W%02d", isoYear, week)
    }

    /// The ISO week of a civil date: the week's Thursday decides its year.
    static func isoWeek(year: Int, month: Int, day: Int) -> (year: Int, week: Int) {
        let number = daysFromCivil(year: year, month: month, day: day)
        // 1970-01-01 was a Thursday: weekday 1 (Monday) ... 7 (Sunday).
        let weekday = ((number + 3) % 7 + 7) % 7 + 1
        let thursday = number - (weekday - 1) + 3
        let thursdayYear = civilFromDays(thursday).year
        let ordinal = thursday - daysFromCivil(year: thursdayYear, month: 1, day: 1)
        return (thursdayYear, ordinal / 7 + 1)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

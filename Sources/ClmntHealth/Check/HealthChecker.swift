import ClmntCore
import Foundation

/// How to check.
public struct CheckOptions: Sendable {
    /// Seconds to wait for each HTTP answer.
    public var timeout: Double
    /// Also `GET /readyz`: live but not ready (503) is `degraded`.
    public var ready: Bool
    public var finder: GatewayProcessFinder

    public init(timeout: Double = 5, ready: Bool = false, finder: GatewayProcessFinder = GatewayProcessFinder()) {
        self.timeout = timeout
        self.ready = ready
        self.finder = finder
    }

    /// Throws unless the timeout is above 0 and at most 300 s.
    public func validate() throws(HealthError) {
        guard timeout > 0, timeout <= 300, timeout.isFinite else { throw .invalidTimeout(timeout) }
    }
}

/// Checks molts: finds the gateway process, then asks it over HTTP.
public enum HealthChecker {
    /// One check; never throws: whatever goes wrong is the status.
    public static func check(_ molt: Molt, options: CheckOptions = CheckOptions(), now: Date = Date()) -> HealthRecord {
        var notes: [String] = []
        let owner = MoltOwner.of(molt)
        let process = options.finder.find(molt: molt, uid: owner?.uid, notes: &notes)
        var record = HealthRecord(timestamp: now, status: .unknown, port: molt.port)

        switch process {
        case .none:
            record.status = .stopped
            record.detail = joined("no gateway process", notes)
            return record
        case .gone(let pid, _, let path):
            record.status = .dead
            record.pid = pid
            record.detail = joined("PID \(pid) from \(path) is gone", notes)
            return record
        case .running(let pid, _):
            record.pid = pid
        }
        guard let port = molt.port else {
            record.status = .unknown
            record.detail = joined("no port: set MOLT_PORT in .molt-info or gateway.port in openclaw.json", notes)
            return record
        }

        switch LoopbackHTTP.request(method: "GET", port: port, path: "/health", timeout: options.timeout) {
        case .failure(let failure):
            record.status = .unhealthy
            record.detail = "GET /health: \(failure)"
        case .success(let response):
            record.httpStatus = response.status
            record.responseTimeMs = (response.elapsedMs * 10).rounded() / 10
            if let problem = healthProblem(response) {
                record.status = .unhealthy
                record.detail = "GET /health: \(problem)"
            } else {
                record.status = .healthy
            }
        }
        if record.status == .healthy && options.ready {
            switch LoopbackHTTP.request(method: "GET", port: port, path: "/readyz", timeout: options.timeout) {
            case .success(let response) where response.status == 200: break
            case .success(let response) where response.status == 404:
                record.detail = "GET /readyz: 404 (this gateway has no readiness endpoint)"
            case .success(let response):
                record.status = .degraded
                record.detail = "not ready: GET /readyz answered \(response.status)" + failingSummary(response.body)
            case .failure(let failure):
                record.status = .degraded
                record.detail = "not ready: GET /readyz: \(failure)"
            }
        }
        if !notes.isEmpty { record.detail = joined(record.detail, notes) }
        return record
    }

    /// Checks every molt at once, so hung gateways cost one timeout in total
    /// rather than one each. Results in the order of `molts`.
    public static func checkAll(_ molts: [Molt], options: CheckOptions = CheckOptions(), now: Date = Date()) -> [HealthRecord] {
        concurrentMap(molts) { check($0, options: options, now: now) }
    }

    /// Checks every molt at once and records each result in its state files.
    public static func checkAndRecord(_ molts: [Molt], options: CheckOptions = CheckOptions(),
                                      historyPolicy: HistoryPolicy = HistoryPolicy(), now: Date = Date()) -> [CheckOutcome] {
        concurrentMap(molts) { molt in
            let record = check(molt, options: options, now: now)
            var warnings: [String] = []
            let files = HealthStateFiles(directory: StateDirectory(molt: molt), historyPolicy: historyPolicy)
            do { warnings += try files.record(record) } catch { warnings.append("state not recorded: \(error)") }
            return CheckOutcome(molt: molt.name, record: record, warnings: warnings)
        }
    }

    /// Nil when a 200 `/health` answer means healthy: a JSON body must not say
    /// `"ok": false`; a body that is not JSON (the control UI's HTML on older builds) is fine.
    static func healthProblem(_ response: HTTPResponse) -> String? {
        guard response.status == 200 else { return "HTTP \(response.status)" }
        let trimmed = response.body.drop(while: { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 })
        guard let first = trimmed.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return nil }
        guard let json = try? JSONSerialization.jsonObject(with: Data(trimmed)) else { return nil }
        if let object = json as? [String: Any], let ok = object["ok"] as? Bool, !ok {
            let status = (object["status"] as? String).map { " (status \($0))" } ?? ""
            return "HTTP 200 but \"ok\": false\(status)"
        }
        return nil
    }

    private static func failingSummary(_ body: Data) -> String {
        guard let object = LenientObject(data: body), let failing = object.members["failing"] as? [Any], !failing.isEmpty else { return "" }
        let names = failing.prefix(5).map { item -> String in
            if let text = item as? String { return text }
            if let dict = item as? [String: Any], let name = dict["name"] as? String ?? dict["id"] as? String { return name }
            return "?"
        }
        return " (failing: \(names.joined(separator: ", ")))"
    }

    private static func joined(_ detail: String?, _ notes: [String]) -> String? {
        let parts = (detail.map { [$0] } ?? []) + notes
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}

/// `body` applied to every item on its own thread (not GCD's pool, which is as
/// wide as the CPU count: on two cores, hung gateways would queue behind each other).
func concurrentMap<Item: Sendable, Value: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) -> Value) -> [Value] {
    let results = ResultSlots<Value>(count: items.count)
    let group = DispatchGroup()
    for (index, item) in items.enumerated() {
        group.enter()
        let thread = Thread {
            results.set(index, body(item))
            group.leave()
        }
        thread.stackSize = 512 * 1024
        thread.start()
    }
    group.wait()
    return results.values.map { $0! }
}

/// Fixed slots filled from many threads.
final class ResultSlots<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Value?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Value) {
        lock.lock(); defer { lock.unlock() }
        slots[index] = value
    }

    var values: [Value?] {
        lock.lock(); defer { lock.unlock() }
        return slots
    }
}

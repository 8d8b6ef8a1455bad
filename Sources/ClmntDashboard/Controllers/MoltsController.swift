import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird

/// `/api/molts`, `/api/molts/:name/health`, `/history`, `/watch-state`: the old dashboard's
/// paths and JSON shapes (its client's `MoltsResponse`, `HealthStatus`, `HealthHistory`,
/// `HealthWatchState`), with clmnt's extra fields after them.
struct MoltsController<Store: DashboardStore> {
    let store: Store
    /// The list's JSON, encoded once per snapshot.
    let lists = RenderedBodies<Date>()
    static var defaultHistoryLimit: Int { 50 }

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { request, _ in
            let fleet = await store.fleet()
            return lists.body(for: fleet.takenAt) { Self.list(fleet).compact }
                .response(to: request, contentType: "application/json; charset=utf-8", headers: [.cacheControl: "no-cache"])
        }
        routes.get(":name/health") { _, context in
            try Self.health(try await molt(context)).response()
        }
        routes.get(":name/history") { request, context in
            let limit = try Self.limit(request.uri.queryParameters["limit"].map(String.init))
            return Self.history(try await molt(context), limit: limit).response()
        }
        routes.get(":name/watch-state") { _, context in
            Self.watchState(try await molt(context)).response()
        }
        return routes
    }

    private func molt(_ context: DashboardContext) async throws -> MoltSnapshot {
        let name = context.parameters.get("name") ?? ""
        // Validated before the snapshot is consulted; the snapshot holds only discovered molts.
        guard MoltName.isValid(name) else { throw DashboardError.invalidMoltName(name) }
        return try resolveMolt(name, in: await store.fleet())
    }

    /// `?limit=N`: 1 to `FleetStateStore.historyDepth`, default 50.
    static func limit(_ text: String?) throws(DashboardError) -> Int {
        guard let text else { return defaultHistoryLimit }
        guard let value = Int(text), (1...FleetStateStore.historyDepth).contains(value) else {
            throw .invalidQuery("invalid limit '\(text)': give 1 to \(FleetStateStore.historyDepth)")
        }
        return value
    }

    // MARK: - Shapes

    /// `MoltsResponse`: `port`, `pid` as strings (the old bash list's types); `status` starts with
    /// `running` when the last check found the gateway's process, else `stopped`, or `unknown` before any check.
    static func list(_ fleet: FleetSnapshot) -> JSONOutput {
        var running = 0
        var counts: [Badge: Int] = [:]
        let molts: [JSONOutput] = fleet.molts.map { snapshot in
            let state = processState(snapshot.last?.status)
            if state == "running" { running += 1 }
            counts[snapshot.badge, default: 0] += 1
            var members: [(String, JSONOutput)] = [
                ("name", .string(snapshot.molt.name)),
                ("port", .string(snapshot.molt.port.map(String.init) ?? "")),
                ("home", .string(snapshot.molt.home)),
                ("status", .string(state)),
                ("pid", .string(snapshot.last?.pid.map(String.init) ?? "")),
                ("created", .string(snapshot.molt.created ?? "")),
                ("docker", .string("no")),
            ]
            members += [
                ("health_status", .optional(snapshot.last?.status.rawValue)),
                ("last_check", .optional(snapshot.last?.timestamp)),
                ("uptime_24h", .optional(snapshot.uptime24h.map(round2))),
                ("response_time_ms", .optional(snapshot.last?.responseTimeMs)),
                ("consecutive_failures", .int(snapshot.watch?.consecutiveFailures ?? 0)),
            ]
            return .object(members)
        }
        var summary: [(String, JSONOutput)] = [
            ("total", .int(fleet.molts.count)), ("running", .int(running)), ("stopped", .int(fleet.molts.count - running)),
        ]
        summary += [("healthy", .int(counts[.green] ?? 0)), ("degraded", .int(counts[.amber] ?? 0)),
                    ("failing", .int(counts[.red] ?? 0)), ("unknown", .int(counts[.grey] ?? 0))]
        var members: [(String, JSONOutput)] = [("molts", .array(molts)), ("summary", .object(summary))]
        if let problem = fleet.problem { members.append(("error", .string(problem))) }
        return .object(members)
    }

    /// The gateway's process ran at the last check (every status but dead and stopped).
    static func processState(_ status: HealthStatus?) -> String {
        switch status {
        case nil: return "unknown"
        case .dead, .stopped: return "stopped"
        case .healthy, .degraded, .unhealthy, .unknown: return "running"
        }
    }

    /// The old client's four words: `degraded` (live, not ready) counts as `unhealthy`, and `stopped`
    /// (no process, none expected) as `unknown`; the exact status is in `clmnt_status`.
    static func legacyStatus(_ status: HealthStatus) -> String {
        switch status {
        case .healthy: return "healthy"
        case .degraded, .unhealthy: return "unhealthy"
        case .dead: return "dead"
        case .stopped, .unknown: return "unknown"
        }
    }

    /// `HealthStatus`: numbers are numbers (0 when there was none: no process, no HTTP answer).
    static func health(_ snapshot: MoltSnapshot) throws(DashboardError) -> JSONOutput {
        guard let record = snapshot.last else { throw .notChecked(snapshot.molt.name) }
        return .object([
            ("status", .string(legacyStatus(record.status))),
            ("timestamp", .string(Timestamp.format(record.timestamp))),
            ("pid", .int(record.pid ?? 0)),
            ("port", .int(record.port ?? snapshot.molt.port ?? 0)),
            ("http_status", .int(record.httpStatus ?? 0)),
            ("response_time_ms", .double(record.responseTimeMs ?? 0)),
            ("clmnt_status", .string(record.status.rawValue)),
            ("detail", .optional(record.detail)),
        ])
    }

    /// `HealthHistory` (the last `limit` checks, all-time `count` and `uptime_percent` to 2 decimals),
    /// then what `clmnt molt health history --json` adds: windows, incidents, first and last check.
    static func history(_ snapshot: MoltSnapshot, limit: Int) -> JSONOutput {
        let report = snapshot.history
        let entries: [JSONOutput] = report.recent.suffix(limit).map { record in
            .object([
                ("timestamp", .string(Timestamp.format(record.timestamp))),
                ("status", .string(record.status.rawValue)),
                ("response_time_ms", .double(record.responseTimeMs ?? 0)),
                ("http_status", .int(record.httpStatus ?? 0)),
                ("pid", .optional(record.pid)),
                ("detail", .optional(record.detail)),
            ])
        }
        let all = snapshot.allTime
        var members: [(String, JSONOutput)] = [
            ("entries", .array(entries)),
            ("count", .int(all?.checks ?? 0)),
            ("uptime_percent", .double(round2(all?.uptimePercent ?? 0))),
        ]
        if case .object(let extra) = report.json(molt: snapshot.molt.name) {
            members += extra.filter { $0.0 != "recent" }
        }
        return .object(members)
    }

    /// `HealthWatchState` as `health-watch-state.json` holds it (its defaults before health-watch ever ran).
    static func watchState(_ snapshot: MoltSnapshot) -> JSONOutput {
        guard case .object(let members) = (snapshot.watch ?? WatchState()).json else { return .null }
        return .object(members + [("recorded", .bool(snapshot.watch != nil))])
    }
}

func round2(_ value: Double) -> Double { (value * 100).rounded() / 100 }

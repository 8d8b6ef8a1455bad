import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird

/// `GET /metrics`: Prometheus text exposition format 0.0.4.
struct MetricsController<Store: DashboardStore> {
    let store: Store
    /// The exposition, rendered once per pair of snapshots.
    let texts = RenderedBodies<[Date]>()

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { request, _ in
            let fleet = await store.fleet(), backups = await store.backups()
            return texts.body(for: [fleet.takenAt, backups.takenAt]) { Self.render(fleet: fleet, backups: backups) }
                .response(to: request, contentType: "text/plain; version=0.0.4; charset=utf-8", headers: [.cacheControl: "no-store"])
        }
        return routes
    }

    static func render(fleet: FleetSnapshot, backups: BackupsSnapshot) -> String {
        var out = ""
        func family(_ name: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(number(value))\n" }
        }
        let molts = fleet.molts
        family("clmnt_molt_up", "1 when the molt's last health check found it healthy, else 0 (also before any check).",
               molts.map { (labels($0), $0.last?.status == .healthy ? 1 : 0) })
        family("clmnt_molt_response_seconds", "Response time of the gateway's /health at the last check that got an answer.",
               molts.compactMap { snapshot in snapshot.last?.responseTimeMs.map { (labels(snapshot), $0 / 1000) } })
        family("clmnt_molt_consecutive_failures", "Checks in a row that were not healthy, as health-watch counts them.",
               molts.map { (labels($0), Double($0.watch?.consecutiveFailures ?? 0)) })
        family("clmnt_molt_last_check_timestamp_seconds", "Unix time of the molt's last health check.",
               molts.compactMap { snapshot in snapshot.last.map { (labels(snapshot), $0.timestamp.timeIntervalSince1970) } })
        let newest = backups.newest
        let newestDate = newest?.date.flatMap(Timestamp.parse)
        family("clmnt_backup_last_success_timestamp_seconds", "Unix time of the newest fleet archive root wrote in the backup dir, dated no later than now, not marked incomplete.",
               newestDate.map { [("", $0.timeIntervalSince1970)] } ?? [])
        family("clmnt_backup_last_size_bytes", "Size of that archive.",
               newest.map { [("", Double($0.sizeBytes))] } ?? [])
        let offHost = backups.offHost?.completedDate
        family("clmnt_backup_offhost_last_success_timestamp_seconds", "Unix time the last off-host copy (--to, --copy-to) completed, as root recorded it in the backup dir.",
               offHost.map { [("", $0.timeIntervalSince1970)] } ?? [])
        return out
    }

    private static func labels(_ snapshot: MoltSnapshot) -> String { "{molt=\"\(escape(snapshot.molt.name))\"}" }

    /// Label values escape `\`, `"` and newlines (molt names never hold them; this is belt and braces).
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }
}

import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird

/// `GET /api/backups`: the rows of `clmnt fleet list-backups --json` (oldest first, encoded
/// by the catalog's own Codable, so a field it gains appears here too) and the schedule.
struct BackupsController<Store: DashboardStore> {
    let store: Store

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { _, _ in
            let snapshot = await store.backups()
            var body = Data("{\"backup_dir\":".utf8)
            body += Data(JSONOutput.string(snapshot.backupDir).compact.utf8)
            body += Data(",\"backups\":".utf8) + Self.rows(snapshot.listings)
            body += Data(",\"schedule\":".utf8) + Data(Self.schedule(snapshot.schedule).compact.utf8)
            body += Data(",\"problem\":".utf8) + Data(JSONOutput.optional(snapshot.problem).compact.utf8) + Data("}".utf8)
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        return routes
    }

    /// Encoded as `list-backups --json` encodes them.
    static func rows(_ listings: [BackupListing]) -> Data {
        (try? JSONStyle.compact(listings)) ?? Data("[]".utf8)
    }

    static func schedule(_ schedule: ScheduleSnapshot) -> JSONOutput {
        .object([
            ("scheduled", .bool(schedule.isScheduled)),
            ("time", .optional(schedule.timeFields)),
            ("entry", .array(schedule.entry.map { .string($0) })),
            ("problem", .optional(schedule.problem)),
        ])
    }
}

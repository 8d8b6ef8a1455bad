import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird

/// `GET /api/health`: the server itself is up (the one route a token does not guard).
struct StatusController {
    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { _, _ in
            JSONOutput.object([("status", .string("ok")), ("timestamp", .string(Timestamp.format(Date())))]).response()
        }
        return routes
    }
}

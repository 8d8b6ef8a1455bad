import Foundation
import Hummingbird

/// `GET /`: the page, rendered on the server (complete without JavaScript).
struct PageController<Store: DashboardStore> {
    let store: Store
    /// The page, rendered once per pair of snapshots; its ages ("checked 3 min ago") count to the
    /// fleet snapshot's time, and the script keeps them current.
    let pages = RenderedBodies<[Date]>()

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { request, _ in
            let fleet = await store.fleet(), backups = await store.backups()
            return pages.body(for: [fleet.takenAt, backups.takenAt]) {
                PageRenderer.page(fleet: fleet, backups: backups, now: fleet.takenAt)
            }.response(to: request, contentType: "text/html; charset=utf-8",
                       headers: [.cacheControl: "no-cache", .contentSecurityPolicy: PageAssets.contentSecurityPolicy])
        }
        routes.get("assets/dashboard.css") { _, _ in Self.asset(PageAssets.css, type: "text/css; charset=utf-8") }
        routes.get("assets/dashboard.js") { _, _ in Self.asset(PageAssets.script, type: "text/javascript; charset=utf-8") }
        return routes
    }

    /// Compiled into the binary: nothing is read from disk.
    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

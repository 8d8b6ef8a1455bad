import Foundation
import Hummingbird

/// `GET /`: the page, rendered on the server (complete without JavaScript).
struct PageController<Store: DashboardStore> {
    let store: Store

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { _, _ in
            let html = PageRenderer.page(fleet: await store.fleet(), backups: await store.backups(), now: Date())
            return Response(status: .ok,
                            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                      .contentSecurityPolicy: PageAssets.contentSecurityPolicy],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
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

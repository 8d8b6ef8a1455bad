import Hummingbird

/// Who may ask. With a token, every request but `GET /api/health` must carry
/// `Authorization: Bearer <token>` (compared in constant time). Without one (loopback
/// only), a request must name a loopback host, so a web page that rebinds its own DNS
/// name to 127.0.0.1 cannot read the fleet through a visitor's browser.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    let loopbackOnly: Bool

    init(token: String?, loopbackOnly: Bool) {
        self.token = token.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.loopbackOnly = loopbackOnly
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token {
            if request.uri.path != "/api/health" {
                guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
                      Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), token) else {
                    throw DashboardError.unauthorized
                }
            }
        } else if loopbackOnly, let host = request.head.authority, !Self.isLoopbackHost(host) {
            throw DashboardError.foreignHost(host)
        }
        return try await next(request, context)
    }

    /// Time depends on the lengths only, never on where the first difference is.
    static func constantTimeEqual(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in 0..<expected.count {
            difference |= (index < given.count ? given[index] : 0) ^ expected[index]
        }
        return difference == 0
    }

    /// `127.0.0.1`, `127.x.y.z`, `localhost`, `[::1]`, each with or without `:port`.
    static func isLoopbackHost(_ authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            return host[host.index(after: host.startIndex)..<close] == "::1"
        }
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let isLoopbackIPv4 = parts.count == 4 && parts[0] == "127"
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
        return host == "localhost" || isLoopbackIPv4
    }
}

import ClmntCore
import Hummingbird

/// Who may ask (docs/api.md, "Access").
///
/// - Every request names exactly one Host (HTTP/1.1 requires it): none or two → 400.
/// - On a loopback TCP bind the Host must be a loopback name, parsed strictly
///   (`localhost`, `127.x.y.z`, `[::1]`, each with an optional numeric port): a web page
///   that rebinds its own DNS name to 127.0.0.1 cannot read the fleet through a visitor's browser.
/// - With a token, every request but `GET /api/health` carries it: `Authorization: Bearer
///   <token>`, or the session cookie the page gets by opening any page once with
///   `?token=<token>` (answered with a redirect to the same page without the token, the
///   cookie HttpOnly and SameSite=Strict). Compared in constant time.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    /// The cookie's value: a digest of the token, so the cookie jar never holds the token itself.
    let sessionValue: [UInt8]?
    let loopbackOnly: Bool

    static var cookieName: String { "clmnt_dashboard" }

    init(token: String?, loopbackOnly: Bool) {
        let token = token.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.token = token
        sessionValue = token.map { Array(Self.sessionValue(for: $0).utf8) }
        self.loopbackOnly = loopbackOnly
    }

    static func sessionValue(for token: [UInt8]) -> String {
        let hasher = SHA256Hasher()
        hasher.update(Array("clmnt-dashboard-session\0".utf8) + token)
        return hasher.finalizeHex()
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The first Host is the authority; a second one stays among the fields.
        guard let host = request.head.authority else { throw DashboardError.badHost("no Host header") }
        guard request.headers[values: .init("Host")!].isEmpty else { throw DashboardError.badHost("more than one Host header") }
        if loopbackOnly, !Self.isLoopbackHost(host) { throw DashboardError.foreignHost(host) }
        guard let token, let sessionValue else { return try await next(request, context) }
        if request.uri.path == "/api/health" { return try await next(request, context) }
        if let header = request.headers[.authorization], header.hasPrefix("Bearer "),
           Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), token) {
            return try await next(request, context)
        }
        if let given = request.uri.queryParameters["token"] {
            guard request.method == .get, Self.constantTimeEqual(Array(given.utf8), token) else { throw DashboardError.unauthorized }
            return Self.exchange(request, sessionValue: String(decoding: sessionValue, as: UTF8.self))
        }
        for cookie in request.headers[values: .cookie] {
            for pair in cookie.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == Self.cookieName, Self.constantTimeEqual(Array(parts[1].utf8), sessionValue) {
                    return try await next(request, context)
                }
            }
        }
        throw DashboardError.unauthorized
    }

    /// `?token=` traded for the session cookie: a redirect to the same path and query without the token,
    /// so it leaves the address bar and the history.
    static func exchange(_ request: Request, sessionValue: String) -> Response {
        let kept = (request.uri.query ?? "").split(separator: "&").filter { !$0.hasPrefix("token=") && $0 != "token" }
        let location = request.uri.path + (kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))
        return Response(status: .seeOther, headers: [
            .location: location,
            .setCookie: "\(cookieName)=\(sessionValue); Path=/; HttpOnly; SameSite=Strict",
            .cacheControl: "no-store",
            .init("Referrer-Policy")!: "no-referrer",
        ])
    }

    /// Time depends on the lengths only, never on where the first difference is.
    static func constantTimeEqual(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in 0..<expected.count {
            difference |= (index < given.count ? given[index] : 0) ^ expected[index]
        }
        return difference == 0
    }

    /// `localhost`, `127.x.y.z` or `[::1]`, then nothing or `:` and a port number: nothing else
    /// (`[::1].evil`, `localhost:evil`, `127.0.0.1:80@evil.example` and `localhost.` are refused).
    static func isLoopbackHost(_ authority: String) -> Bool {
        let text = authority.lowercased()
        var host = Substring(text)
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let rest = host[host.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return false }
                port = rest.dropFirst()
            }
            host = host[...close]
        } else if let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        if let port {
            guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(port), number <= 65_535 else { return false }
        }
        return host == "localhost" || host == "[::1]" || isLoopbackIPv4(host)
    }

    /// `127.a.b.c`, each part 1 to 3 decimal digits, at most 255.
    static func isLoopbackIPv4(_ host: Substring) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy {
            !$0.isEmpty && $0.count <= 3 && $0.allSatisfy { $0.isASCII && $0.isNumber } && (Int($0) ?? 256) <= 255
        }
    }
}

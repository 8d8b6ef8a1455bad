import ClmntCore
import ClmntHealth
import Hummingbird

/// Everything a request can fail with; each becomes a status and a JSON body `{"error": "..."}`
/// (the old dashboard's error field, now with a real HTTP status).
public enum DashboardError: Error, HTTPResponseError, CustomStringConvertible, Equatable {
    /// Not a molt name at all (`..`, `/`, upper case...): nothing was looked up.
    case invalidMoltName(String)
    case unknownMolt(String)
    /// A known molt with no `health-status.json` yet.
    case notChecked(String)
    case invalidQuery(String)
    case unauthorized
    /// A Host header naming something else than loopback (DNS rebinding) on a token-less server.
    case foreignHost(String)
    /// No Host header, or more than one.
    case badHost(String)
    /// An event stream beyond the caps (DashboardLimits).
    case tooManyStreams(String)
    /// A configuration mistake at start-up (exit 64).
    case invalidOption(String)
    /// `dashboard setup` could not write, remove or enable its unit (exit 1).
    case setupFailed(String)

    public var description: String {
        switch self {
        case .invalidMoltName(let name): return "invalid molt name '\(name)' (lower-case letters, digits, - and _, at most 32)"
        case .unknownMolt(let name): return "no molt named '\(name)' in this fleet"
        case .notChecked(let name): return "no health check recorded for '\(name)' yet"
        case .invalidQuery(let text): return text
        case .unauthorized: return "missing or wrong bearer token"
        case .foreignHost(let host): return "host '\(host)' is not served: this dashboard answers on loopback only"
        case .badHost(let problem): return "\(problem): a request names exactly one Host"
        case .tooManyStreams(let reason): return "\(reason): try again later"
        case .invalidOption(let text), .setupFailed(let text): return text
        }
    }

    /// A value the user can correct on the command line (exit 64).
    public var isUsageError: Bool {
        if case .invalidOption = self { return true }
        return false
    }

    public var status: HTTPResponse.Status {
        switch self {
        case .invalidMoltName, .invalidQuery, .invalidOption, .badHost: return .badRequest
        case .unknownMolt, .notChecked: return .notFound
        case .unauthorized: return .unauthorized
        case .foreignHost: return .forbidden
        case .tooManyStreams: return .serviceUnavailable
        case .setupFailed: return .internalServerError
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var members: [(String, JSONOutput)] = [("error", .string(description))]
        // The old client reads `status: "unknown"` from a failed health request.
        if case .notChecked = self { members.append(("status", .string("unknown"))) }
        var response = JSONOutput.object(members).response(status: status)
        if self == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        if case .tooManyStreams = self { response.headers[.retryAfter] = "30" }
        return response
    }
}

extension JSONOutput {
    /// The value as an `application/json` response (compact, one line).
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: compact)))
    }
}

/// A name from a URL, checked before it touches the filesystem: invalid → 400, not in the fleet → 404.
func resolveMolt(_ name: String, in fleet: FleetSnapshot) throws(DashboardError) -> MoltSnapshot {
    guard MoltName.isValid(name) else { throw .invalidMoltName(name) }
    guard let molt = fleet.molts.first(where: { $0.molt.name == name }) else { throw .unknownMolt(name) }
    return molt
}

extension DashboardError: ExitStatusReporting {
    public var exitStatus: Int32 { isUsageError ? ExitStatus.usage : ExitStatus.failure }
}

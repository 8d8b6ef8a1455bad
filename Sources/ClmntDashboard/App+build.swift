import ClmntCore
import Foundation
import Hummingbird
import HummingbirdCore
import Logging

/// What `clmnt dashboard serve` was asked for.
public struct DashboardConfiguration: Sendable {
    public var baseDir: String
    /// Where the archives are; nil: `BackupLocation`'s order over `environment` and the schedule in `crontabFile`.
    public var backupDir: String?
    public var host: String
    public var port: Int
    /// Required on every request but `/api/health` when set.
    public var token: String?
    /// A loopback TCP bind without a token, asked for explicitly (`--no-auth`).
    public var noAuth: Bool
    /// Listen on this Unix socket instead of TCP: mode 0660, group `socketGroup` (root's when nil).
    public var unixSocket: String?
    public var socketGroup: String?
    /// The oldest state an answer may show: the store looks at the state files twice per interval
    /// (stat only; a file is re-read when it changed).
    public var refreshInterval: Duration
    /// Root's crontab, read as a file for the backup schedule (the dashboard runs no program).
    public var crontabFile: String
    public var limits: DashboardLimits
    /// Where `$CLMNT_BACKUP_DIR` is looked up when `backupDir` is nil.
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public static let defaultPort = 19000
    public static let defaultCrontabFile = "/var/spool/cron/crontabs/root"

    public init(baseDir: String, backupDir: String? = nil, host: String = "127.0.0.1", port: Int = defaultPort,
                token: String? = nil, noAuth: Bool = false, unixSocket: String? = nil, socketGroup: String? = nil,
                refreshInterval: Duration = .seconds(1),
                crontabFile: String = DashboardConfiguration.defaultCrontabFile, limits: DashboardLimits = .default) {
        self.baseDir = baseDir
        self.backupDir = backupDir
        self.host = host
        self.port = port
        self.token = token
        self.noAuth = noAuth
        self.unixSocket = unixSocket
        self.socketGroup = socketGroup
        self.refreshInterval = refreshInterval
        self.crontabFile = crontabFile
        self.limits = limits
    }

    /// Loopback bind addresses; the only ones `--no-auth` is allowed on.
    public static func isLoopback(_ host: String) -> Bool {
        host == "::1" || AccessMiddleware<DashboardContext>.isLoopbackHost(host)
    }

    var hasToken: Bool { !(token ?? "").isEmpty }

    /// The Host header is checked against loopback names on a loopback TCP bind (a Unix socket is
    /// out of a browser's reach; a public bind has its own names and a token).
    var checksLoopbackHost: Bool { unixSocket == nil && Self.isLoopback(host) }

    /// A usage mistake (exit 64): a TCP listener needs a token, or `--no-auth` on loopback.
    public func validate() throws(DashboardError) {
        guard (0...65_535).contains(port) else { throw .invalidOption("invalid --port \(port): give 1 to 65535 (0: any free port)") }
        if noAuth && hasToken { throw .invalidOption("give a token or --no-auth, not both") }
        if let unixSocket {
            guard unixSocket.hasPrefix("/") else { throw .invalidOption("--unix-socket '\(unixSocket)' must be an absolute path") }
            guard unixSocket.utf8.count < 108 else { throw .invalidOption("--unix-socket '\(unixSocket)' is longer than a socket path may be (107 bytes)") }
            if let socketGroup, UserAccounts.groupID(named: socketGroup) == nil {
                throw .invalidOption("--socket-group \(socketGroup): no such group")
            }
            return
        }
        if socketGroup != nil { throw .invalidOption("--socket-group goes with --unix-socket") }
        if hasToken { return }
        if !Self.isLoopback(host) {
            if noAuth { throw .invalidOption("--no-auth is for loopback only; binding \(host) needs a token: --token-file FILE or CLMNT_DASHBOARD_TOKEN") }
            throw .invalidOption("binding \(host) (not loopback) needs a token: --token-file FILE or CLMNT_DASHBOARD_TOKEN")
        }
        if !noAuth {
            throw .invalidOption("serving \(host) needs a token (--token-file FILE or CLMNT_DASHBOARD_TOKEN; 'clmnt dashboard setup --systemd' makes one), "
                                 + "or --no-auth to let every local user read the fleet, or --unix-socket PATH")
        }
    }
}

/// The application: the router over a store that polls the fleet's state files, the store's
/// refresh loop running beside the server as a service.
public func buildApplication(_ configuration: DashboardConfiguration,
                             onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws(DashboardError)
    -> some ApplicationProtocol {
    try configuration.validate()
    var logger = Logger(label: "clmnt-dashboard")
    logger.logLevel = .notice
    let store = FleetStateStore(configuration: configuration)
    var address = BindAddress.hostname(configuration.host, port: configuration.port)
    if let socket = configuration.unixSocket {
        try UnixSocketListener.prepare(socket)
        address = .unixDomainSocket(path: socket)
    }
    let router = buildRouter(store: store, configuration: configuration)
    return Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .nanoseconds(configuration.limits.idleTimeoutNanoseconds))),
        configuration: .init(address: address, serverName: "clmnt",
                             availableConnectionsDelegate: MaximumAvailableConnections(configuration.limits.maxConnections, logger: logger)),
        services: [store],
        onServerRunning: { channel in
            if let socket = configuration.unixSocket { UnixSocketListener.share(socket, group: configuration.socketGroup) }
            await onServerRunning(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger
    )
}

/// Every route, behind the access middleware.
public func buildRouter(store: some DashboardStore, configuration: DashboardConfiguration) -> Router<DashboardContext> {
    let router = Router(context: DashboardContext.self)
    router.add(middleware: AccessMiddleware(token: configuration.token, loopbackOnly: configuration.checksLoopbackHost))
    router.addRoutes(StatusController().endpoints, atPath: "/api/health")
    router.addRoutes(MoltsController(store: store).endpoints, atPath: "/api/molts")
    router.addRoutes(BackupsController(store: store).endpoints, atPath: "/api/backups")
    router.addRoutes(EventsController(store: store, interval: configuration.refreshInterval,
                                      gate: EventStreamGate(limits: configuration.limits)).endpoints, atPath: "/api/events")
    router.addRoutes(MetricsController(store: store).endpoints, atPath: "/metrics")
    router.addRoutes(PageController(store: store).endpoints)
    return router
}

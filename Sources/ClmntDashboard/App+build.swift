import ClmntCore
import Foundation
import Hummingbird
import Logging

/// The request context of every dashboard route.
public typealias DashboardContext = BasicRequestContext

/// What `clmnt dashboard serve` was asked for.
public struct DashboardConfiguration: Sendable {
    public var baseDir: String
    /// Where the archives are; nil: the scheduled backup's `--backup-dir`, else `BackupJob.defaultBackupDir`.
    public var backupDir: String?
    public var host: String
    public var port: Int
    /// Required on every request but `/api/health` when set.
    public var token: String?
    /// The oldest state an answer may show: the store looks at the state files twice per interval
    /// (stat only; a file is re-read when it changed).
    public var refreshInterval: Duration
    /// Root's crontab, read as a file for the backup schedule (the dashboard runs no program).
    public var crontabFile: String

    public static let defaultPort = 19000
    public static let defaultCrontabFile = "/var/spool/cron/crontabs/root"

    public init(baseDir: String, backupDir: String? = nil, host: String = "127.0.0.1", port: Int = defaultPort,
                token: String? = nil, refreshInterval: Duration = .seconds(1),
                crontabFile: String = DashboardConfiguration.defaultCrontabFile) {
        self.baseDir = baseDir
        self.backupDir = backupDir
        self.host = host
        self.port = port
        self.token = token
        self.refreshInterval = refreshInterval
        self.crontabFile = crontabFile
    }

    /// Loopback addresses need no token; any other bind address does.
    public static func isLoopback(_ host: String) -> Bool {
        host == "::1" || AccessMiddleware<DashboardContext>.isLoopbackHost(host)
    }

    /// A usage mistake (exit 64) when a non-loopback bind has no token.
    public func validate() throws(DashboardError) {
        guard (0...65_535).contains(port) else { throw .invalidOption("invalid --port \(port): give 1 to 65535 (0: any free port)") }
        if !Self.isLoopback(host) && (token ?? "").isEmpty {
            throw .invalidOption("binding \(host) (not loopback) needs a token: --token-file FILE or CLMNT_DASHBOARD_TOKEN")
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
    let router = buildRouter(store: store, configuration: configuration)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "clmnt"),
        services: [store],
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}

/// Every route, behind the access middleware.
public func buildRouter(store: some DashboardStore, configuration: DashboardConfiguration) -> Router<DashboardContext> {
    let router = Router(context: DashboardContext.self)
    router.add(middleware: AccessMiddleware(token: configuration.token, loopbackOnly: DashboardConfiguration.isLoopback(configuration.host)))
    router.addRoutes(StatusController().endpoints, atPath: "/api/health")
    router.addRoutes(MoltsController(store: store).endpoints, atPath: "/api/molts")
    router.addRoutes(BackupsController(store: store).endpoints, atPath: "/api/backups")
    router.addRoutes(EventsController(store: store, interval: configuration.refreshInterval).endpoints, atPath: "/api/events")
    router.addRoutes(MetricsController(store: store).endpoints, atPath: "/metrics")
    router.addRoutes(PageController(store: store).endpoints)
    return router
}

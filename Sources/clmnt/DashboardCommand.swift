import ArgumentParser
import ClmntCore
import ClmntDashboard
import Foundation

struct Dashboard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the fleet's health, backups and metrics over HTTP, with a web page.",
        subcommands: [Serve.self, Setup.self]
    )
}

extension Dashboard {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the dashboard: a web page, the JSON API of the old dashboard, /metrics and /api/events.",
            discussion: """
            Binds 127.0.0.1 by default. A TCP listener needs a token (--token-file or CLMNT_DASHBOARD_TOKEN): \
            every request but /api/health then sends 'Authorization: Bearer <token>', or the cookie a browser \
            gets by opening the page once with ?token=<token>. On loopback, --no-auth serves without one (every \
            local user can read the fleet). --unix-socket serves on a socket of mode 0660 instead. \
            The server reads state files and archive manifests only; it runs no program.
            """
        )

        @OptionGroup var global: GlobalOptions

        @OptionGroup var backup: BackupDirOptions

        @Option(help: "The address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "The TCP port to listen on.")
        var port = DashboardConfiguration.defaultPort

        @Option(help: "A file holding the bearer token (its first line; mode 0600, owned by root); overrides CLMNT_DASHBOARD_TOKEN.")
        var tokenFile: String?

        @Flag(help: "Serve a loopback address without a token: every local user can read the fleet.")
        var noAuth = false

        @Option(help: "Listen on this Unix socket (mode 0660) instead of TCP.")
        var unixSocket: String?

        @Option(help: "The group that may connect to --unix-socket (default: root's).")
        var socketGroup: String?

        func run() async throws {
            // Resolved once, at start (reading the crontab runs `crontab -l`; requests run no program).
            let baseDir = global.resolvedBaseDir
            let location = backup.resolved(baseDir: baseDir)
            global.detail("backup dir \(location.directory) (\(location.explanation))", json: true)
            var configuration = DashboardConfiguration(baseDir: baseDir, backupDir: location.directory, host: host, port: port,
                                                       noAuth: noAuth, unixSocket: unixSocket.map(absolutePath),
                                                       socketGroup: socketGroup)
            try reportingErrors {
                configuration.token = try readToken()
                try configuration.validate()
            }
            let settings = configuration
            let quiet = global.quiet
            do {
                let app = try buildApplication(settings) { port in
                    guard !quiet else { return }
                    if let socket = settings.unixSocket {
                        printError("clmnt dashboard: serving \(settings.baseDir) on unix socket \(socket)")
                    } else {
                        printError("clmnt dashboard: serving \(settings.baseDir) on http://\(host.contains(":") ? "[\(host)]" : host):\(port)/")
                    }
                }
                try await app.runService()
            } catch let error as DashboardError {
                printError("clmnt: \(error)")
                throw ExitCode(error.isUsageError ? ExitStatus.usage : ExitStatus.failure)
            } catch {
                printError("clmnt: dashboard: \(error)")
                throw ExitCode(ExitStatus.failure)
            }
        }

        /// The token file's first line, else the environment's; nil when neither is set.
        private func readToken() throws -> String? {
            if let tokenFile { return try DashboardToken.read(path: absolutePath(tokenFile)) }
            let fromEnvironment = ProcessInfo.processInfo.environment["CLMNT_DASHBOARD_TOKEN"] ?? ""
            if fromEnvironment.isEmpty { return nil }
            guard fromEnvironment.count >= DashboardToken.minimumLength else {
                throw DashboardError.invalidOption("CLMNT_DASHBOARD_TOKEN is shorter than \(DashboardToken.minimumLength) characters")
            }
            return fromEnvironment
        }
    }

    struct Setup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the dashboard as a hardened systemd service (clmnt-dashboard.service).",
            discussion: """
            The unit keeps root's uid but only CAP_DAC_READ_SEARCH, sees the filesystem read-only \
            (ProtectSystem=strict) and sets NoNewPrivileges. Running setup again replaces the unit.
            """
        )

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Write a systemd service (the only way setup knows; required).")
        var systemd = false

        @Flag(help: "Stop the service and remove its unit.")
        var remove = false

        @Flag(help: "Show whether the service is installed and running.")
        var status = false

        @Option(help: "The directory holding the archives.")
        var backupDir: String?

        @Option(help: "The address the service listens on.")
        var host = "127.0.0.1"

        @Option(help: "The TCP port the service listens on.")
        var port = DashboardConfiguration.defaultPort

        @Option(help: "The bearer token's file, read by the service at start; made (random, mode 0600) when missing. Default: \(DashboardToken.defaultPath) for a TCP listener.")
        var tokenFile: String?

        @Flag(help: "Serve a loopback address without a token: every local user can read the fleet.")
        var noAuth = false

        @Option(help: "Listen on this Unix socket (mode 0660) instead of TCP.")
        var unixSocket: String?

        @Option(help: "The group that may connect to --unix-socket (default: root's).")
        var socketGroup: String?

        @Option(help: "Where the unit is written.")
        var unitDir = DashboardService.defaultUnitDir

        func validate() throws {
            if !systemd { throw ValidationError("give --systemd (the dashboard runs as a systemd service)") }
            if remove && status { throw ValidationError("give --remove or --status, not both") }
        }

        func run() throws {
            try reportingErrors {
                let service = DashboardService(unitDir: unitDir)
                if status {
                    printText(service.status().joined(separator: "\n"))
                } else if remove {
                    let notes = try service.remove()
                    global.say(notes.isEmpty ? "no dashboard service was installed" : notes.joined(separator: "\n"))
                } else {
                    let settings = DashboardService.Settings(
                        executable: currentExecutablePath(), baseDir: global.resolvedBaseDir,
                        backupDir: backupDir.map(absolutePath), host: host, port: port, tokenFile: tokenFile.map(absolutePath),
                        noAuth: noAuth, unixSocket: unixSocket.map(absolutePath), socketGroup: socketGroup)
                    global.say(try service.install(settings).joined(separator: "\n"))
                }
            }
        }
    }
}

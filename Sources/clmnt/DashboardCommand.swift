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
            Binds 127.0.0.1 by default. Any other address needs a token (--token-file or \
            CLMNT_DASHBOARD_TOKEN); then every request but /api/health must send 'Authorization: Bearer <token>'. \
            The server reads state files and archive manifests only; it runs no program.
            """
        )

        @OptionGroup var global: GlobalOptions

        @OptionGroup var backup: BackupDirOptions

        @Option(help: "The address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "The TCP port to listen on.")
        var port = DashboardConfiguration.defaultPort

        @Option(help: "A file holding the bearer token (its first line); overrides CLMNT_DASHBOARD_TOKEN.")
        var tokenFile: String?

        func run() async throws {
            // Resolved once, at start (reading the crontab runs `crontab -l`; requests run no program).
            let baseDir = global.resolvedBaseDir
            let location = backup.resolved(baseDir: baseDir)
            global.detail("backup dir \(location.directory) (\(location.explanation))", json: true)
            var configuration = DashboardConfiguration(baseDir: baseDir, backupDir: location.directory,
                                                       host: host, port: port)
            try reportingErrors {
                configuration.token = try readToken()
                try configuration.validate()
            }
            let settings = configuration
            let quiet = global.quiet
            let app = try buildApplication(settings) { port in
                if !quiet { printError("clmnt dashboard: serving \(settings.baseDir) on http://\(host.contains(":") ? "[\(host)]" : host):\(port)/") }
            }
            do { try await app.runService() } catch {
                printError("clmnt: dashboard: \(error)")
                throw ExitCode(ExitStatus.failure)
            }
        }

        /// The token file's first line, else the environment's; nil when neither is set.
        private func readToken() throws -> String? {
            if let tokenFile {
                guard let data = FileManager.default.contents(atPath: absolutePath(tokenFile)) else {
                    throw DashboardError.invalidOption("cannot read --token-file \(tokenFile)")
                }
                let token = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
                guard token.count >= 16 else { throw DashboardError.invalidOption("the token in \(tokenFile) is shorter than 16 characters") }
                return token
            }
            let fromEnvironment = ProcessInfo.processInfo.environment["CLMNT_DASHBOARD_TOKEN"] ?? ""
            if fromEnvironment.isEmpty { return nil }
            guard fromEnvironment.count >= 16 else { throw DashboardError.invalidOption("CLMNT_DASHBOARD_TOKEN is shorter than 16 characters") }
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

        @Option(help: "A file holding the bearer token, read by the service at start.")
        var tokenFile: String?

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
                        backupDir: backupDir.map(absolutePath), host: host, port: port, tokenFile: tokenFile.map(absolutePath))
                    global.say(try service.install(settings).joined(separator: "\n"))
                }
            }
        }
    }
}

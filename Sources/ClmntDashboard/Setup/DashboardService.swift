import ClmntCore
import ClmntHealth
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `clmnt-dashboard.service`: `dashboard serve` under systemd, hardened. It keeps root's uid
/// (root's crontab file is 0600) but no capability except CAP_DAC_READ_SEARCH (read molt files
/// whatever their modes), sees the whole filesystem read-only, and cannot gain privileges.
public struct DashboardService: Sendable {
    public let unitDir: String
    public static let unitName = "clmnt-dashboard.service"
    public static let defaultUnitDir = SystemdTimer.defaultUnitDir

    public init(unitDir: String = DashboardService.defaultUnitDir) { self.unitDir = unitDir }

    public var unitPath: String { unitDir + "/" + Self.unitName }
    public var isInstalled: Bool { FileManager.default.fileExists(atPath: unitPath) }

    /// What the unit runs; every path absolute and safe unquoted in a unit file.
    public struct Settings: Sendable, Equatable {
        public var executable: String
        public var baseDir: String
        public var backupDir: String?
        public var host: String
        public var port: Int
        public var tokenFile: String?
        /// A loopback TCP bind without a token, asked for explicitly.
        public var noAuth: Bool
        public var unixSocket: String?
        public var socketGroup: String?

        public init(executable: String, baseDir: String, backupDir: String? = nil, host: String = "127.0.0.1",
                    port: Int = DashboardConfiguration.defaultPort, tokenFile: String? = nil, noAuth: Bool = false,
                    unixSocket: String? = nil, socketGroup: String? = nil) {
            self.executable = executable
            self.baseDir = baseDir
            self.backupDir = backupDir
            self.host = host
            self.port = port
            self.tokenFile = tokenFile
            self.noAuth = noAuth
            self.unixSocket = unixSocket
            self.socketGroup = socketGroup
        }

        /// A TCP listener gets a token unless `--no-auth` says otherwise: the default file when none is named.
        public var resolvingTokenFile: Settings {
            var settings = self
            if settings.tokenFile == nil && !noAuth && unixSocket == nil { settings.tokenFile = DashboardToken.defaultPath }
            return settings
        }

        public func validate() throws(DashboardError) {
            for (what, path) in [("clmnt binary", executable), ("base dir", baseDir), ("backup dir", backupDir),
                                 ("token file", tokenFile), ("unix socket", unixSocket)] {
                guard let path else { continue }
                guard path.hasPrefix("/") else { throw .invalidOption("\(what) '\(path)' must be an absolute path") }
                if let bad = CronTab.unsafeCharacter(in: path) {
                    throw .invalidOption("\(what) '\(path)' contains \(bad), which is unsafe in a unit file")
                }
            }
            if CronTab.unsafeCharacter(in: host, allowing: "[]") != nil { throw .invalidOption("invalid --host '\(host)'") }
            if let socketGroup, CronTab.unsafeCharacter(in: socketGroup) != nil { throw .invalidOption("invalid --socket-group '\(socketGroup)'") }
            try DashboardConfiguration(baseDir: baseDir, host: host, port: port, token: tokenFile == nil ? nil : "set",
                                       noAuth: noAuth, unixSocket: unixSocket, socketGroup: socketGroup).validate()
        }

        var arguments: [String] {
            var words = ["dashboard", "serve", "-d", baseDir]
            if let unixSocket {
                words += ["--unix-socket", unixSocket]
                if let socketGroup { words += ["--socket-group", socketGroup] }
            } else {
                words += ["--host", host, "--port", String(port)]
            }
            if let backupDir { words += ["--backup-dir", backupDir] }
            if let tokenFile { words += ["--token-file", tokenFile] }
            if noAuth { words.append("--no-auth") }
            return words
        }
    }

    public static func unit(_ settings: Settings) -> String {
        """
        # Managed by 'clmnt dashboard setup --systemd'; rerun it rather than editing.
        [Unit]
        Description=Claw Mountain fleet dashboard
        After=network.target

        [Service]
        Type=simple
        ExecStart=\(([settings.executable] + settings.arguments).joined(separator: " "))
        Restart=on-failure
        RestartSec=5s
        # What any local user can make it hold (docs/api.md, "Limits"): a descriptor per connection
        # up to its cap of \(DashboardLimits.default.maxConnections), threads (one event loop and one worker per core), memory.
        LimitNOFILE=\(DashboardLimits.default.descriptorLimit)
        TasksMax=512
        MemoryMax=512M
        # Root's uid (root's crontab is 0600), but only the right to read any file.
        CapabilityBoundingSet=CAP_DAC_READ_SEARCH
        AmbientCapabilities=CAP_DAC_READ_SEARCH
        NoNewPrivileges=yes
        ProtectSystem=strict
        ProtectHome=read-only
        ReadOnlyPaths=\(settings.baseDir)\(settings.unixSocket.map { "\nReadWritePaths=" + ($0 as NSString).deletingLastPathComponent } ?? "")
        PrivateTmp=yes
        PrivateDevices=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectKernelLogs=yes
        ProtectControlGroups=yes
        ProtectClock=yes
        ProtectHostname=yes
        RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
        RestrictNamespaces=yes
        RestrictSUIDSGID=yes
        LockPersonality=yes
        SystemCallArchitectures=native

        [Install]
        WantedBy=multi-user.target

        """
    }

    /// Writes the unit (replacing ours); enables and (re)starts it where systemd runs.
    public func install(_ requested: Settings) throws(DashboardError) -> [String] {
        let settings = requested.resolvingTokenFile
        try settings.validate()
        var notes: [String] = []
        if let tokenFile = settings.tokenFile {
            // An existing token is kept (and must pass the checks serve makes); a missing one is made.
            let made = try DashboardToken.ensure(path: tokenFile)
            let page = settings.unixSocket == nil ? "http://\(settings.host.contains(":") ? "[\(settings.host)]" : settings.host):\(settings.port)/" : "the page"
            notes.append((made ? "wrote a new token to \(tokenFile) (mode 0600)" : "kept the token in \(tokenFile)")
                         + ": open \(page)?token=<the token> once in a browser (it trades it for a cookie), "
                         + "or send 'Authorization: Bearer <the token>' (curl -H \"Authorization: Bearer $(cat \(tokenFile))\")")
        }
        let directory = StateDirectory(path: unitDir, owner: nil)
        do { try directory.writeAtomically(Self.unit(settings), name: Self.unitName) } catch {
            throw .setupFailed(error.description)
        }
        notes.insert("wrote \(unitPath)", at: 0)
        if SystemdTimer.isUsable {
            try systemctl(["daemon-reload"])
            try systemctl(["enable", Self.unitName])
            try systemctl(["restart", Self.unitName])
            notes.append("enabled and (re)started \(Self.unitName)")
        } else {
            notes.append("systemd is not running here: on the target host run 'systemctl daemon-reload && systemctl enable --now \(Self.unitName)'")
        }
        return notes
    }

    /// Stops and disables the service (where systemd runs) and deletes the unit.
    public func remove() throws(DashboardError) -> [String] {
        guard isInstalled else { return [] }
        var notes: [String] = []
        if SystemdTimer.isUsable {
            _ = try? ProgramRunner.capture("systemctl", ["disable", "--now", Self.unitName], timeout: 60)
            notes.append("stopped and disabled \(Self.unitName)")
        }
        guard unlink(unitPath) == 0 else {
            throw .setupFailed("cannot remove \(unitPath): \(String(cString: strerror(errno)))")
        }
        notes.append("removed \(unitPath)")
        if SystemdTimer.isUsable { try systemctl(["daemon-reload"]) }
        return notes
    }

    /// The unit's `ExecStart=` line and, where systemd runs, `systemctl is-active`.
    public func status() -> [String] {
        guard isInstalled, let text = try? String(contentsOfFile: unitPath, encoding: .utf8) else {
            return ["no dashboard service installed (\(unitPath) is missing)"]
        }
        var lines = ["installed: \(unitPath)"]
        if let exec = text.split(separator: "\n").first(where: { $0.hasPrefix("ExecStart=") }) {
            lines.append("runs: " + exec.dropFirst("ExecStart=".count))
        }
        if SystemdTimer.isUsable, let output = try? ProgramRunner.capture("systemctl", ["is-active", Self.unitName], timeout: 30) {
            lines.append("state: " + output.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return lines
    }

    private func systemctl(_ arguments: [String]) throws(DashboardError) {
        do { try ProgramRunner.run("systemctl", arguments, timeout: 60) } catch {
            throw .setupFailed("cannot run systemctl \(arguments.joined(separator: " ")): \(error)")
        }
    }
}

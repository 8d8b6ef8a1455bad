import ClmntCore
import Foundation

/// A service and timer unit pair running `health-watch` for one molt.
///
/// The units run as root (no `User=`): unlike the molt's own crontab, root can
/// read a commander's hooks token without handing it to the monitored molt.
/// Files written are still chowned to the molt user.
public struct SystemdTimer: Sendable {
    public let molt: String
    public let unitDir: String

    public static let defaultUnitDir = "/etc/systemd/system"

    public init(molt: String, unitDir: String = SystemdTimer.defaultUnitDir) {
        self.molt = molt
        self.unitDir = unitDir
    }

    public var unitName: String { "clmnt-health-\(molt)" }
    public var servicePath: String { unitDir + "/\(unitName).service" }
    public var timerPath: String { unitDir + "/\(unitName).timer" }

    public var isInstalled: Bool {
        FileManager.default.fileExists(atPath: servicePath) || FileManager.default.fileExists(atPath: timerPath)
    }

    /// systemd is PID 1 here and `systemctl` exists (sd_booted's test).
    public static var isUsable: Bool {
        ProgramRunner.locate("systemctl") != nil && FileManager.default.fileExists(atPath: "/run/systemd/system")
    }

    public static func service(for schedule: WatchSchedule) -> String {
        """
        # Managed by 'clmnt molt health setup \(schedule.molt) --systemd'; rerun it rather than editing.
        [Unit]
        Description=Claw Mountain health check of molt \(schedule.molt)
        After=network.target

        [Service]
        Type=oneshot
        ExecStart=\(schedule.commandLine(quote: "\""))
        # 2 means "checked, molt not healthy": the alerting handles that, the unit did its job.
        SuccessExitStatus=2
        StandardOutput=append:\(schedule.logPath)
        StandardError=append:\(schedule.logPath)
        TimeoutStartSec=5min

        """
    }

    public static func timer(for schedule: WatchSchedule) -> String {
        """
        # Managed by 'clmnt molt health setup \(schedule.molt) --systemd'; rerun it rather than editing.
        [Unit]
        Description=Run the Claw Mountain health check of molt \(schedule.molt) every \(schedule.intervalText)

        [Timer]
        OnCalendar=\(schedule.onCalendar)
        AccuracySec=1s
        Unit=clmnt-health-\(schedule.molt).service

        [Install]
        WantedBy=timers.target

        """
    }

    /// Writes both units; enables the timer when systemd runs here. Returns
    /// what was done, or the commands to run where systemd does not.
    public func install(_ schedule: WatchSchedule) throws(HealthError) -> [String] {
        let units = StateDirectory(path: unitDir, owner: nil)
        try units.writeAtomically(Self.service(for: schedule), name: "\(unitName).service")
        try units.writeAtomically(Self.timer(for: schedule), name: "\(unitName).timer")
        var notes = ["wrote \(servicePath)", "wrote \(timerPath)"]
        if Self.isUsable {
            try systemctl(["daemon-reload"])
            try systemctl(["enable", "--now", "\(unitName).timer"])
            notes.append("enabled and started \(unitName).timer")
        } else {
            notes.append("systemd is not running here: on the target host run 'systemctl daemon-reload && systemctl enable --now \(unitName).timer'")
        }
        return notes
    }

    /// Disables the timer (when systemd runs) and deletes both units.
    public func remove() throws(HealthError) -> [String] {
        guard isInstalled else { return [] }
        var notes: [String] = []
        if Self.isUsable {
            _ = try? ProgramRunner.capture("systemctl", ["disable", "--now", "\(unitName).timer"], timeout: 60)
            notes.append("disabled \(unitName).timer")
        }
        for path in [timerPath, servicePath] where FileManager.default.fileExists(atPath: path) {
            guard unlink(path) == 0 else { throw .cannotWrite(path: path, reason: errnoText()) }
            notes.append("removed \(path)")
        }
        if Self.isUsable { try systemctl(["daemon-reload"]) }
        return notes
    }

    /// `systemctl is-active <timer>` where systemd runs, else nil.
    public func activeState() -> String? {
        guard Self.isUsable, let output = try? ProgramRunner.capture("systemctl", ["is-active", "\(unitName).timer"], timeout: 30) else {
            return nil
        }
        return output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func systemctl(_ arguments: [String]) throws(HealthError) {
        do { try ProgramRunner.run("systemctl", arguments, timeout: 60) } catch {
            throw .program(action: "run systemctl \(arguments.joined(separator: " "))", error: error)
        }
    }
}

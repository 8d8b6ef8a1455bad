import ClmntCore
import Foundation

/// What `health-watch` is told.
public struct WatchOptions: Sendable {
    public var check: CheckOptions
    public var rules: AlertRules
    public var channels: AlertChannels
    public var historyPolicy: HistoryPolicy

    public init(check: CheckOptions = CheckOptions(), rules: AlertRules = AlertRules(), channels: AlertChannels = AlertChannels(),
                historyPolicy: HistoryPolicy = HistoryPolicy()) {
        self.check = check
        self.rules = rules
        self.channels = channels
        self.historyPolicy = historyPolicy
    }
}

/// What one `health-watch` run did.
public struct WatchReport: Sendable {
    public let molt: String
    public let record: HealthRecord
    public let previous: WatchState
    /// As written to `health-watch-state.json`.
    public let state: WatchState
    /// The alert, reminder or recovery this run was due to send.
    public let message: AlertMessage?
    /// One per configured channel; empty when nothing was due or no channel is configured.
    public let deliveries: [Delivery]
    /// Corrupt state files that were reset, and the like.
    public let warnings: [String]
    /// State that could not be written: the run failed.
    public let errors: [String]
}

/// The scheduled entry point: check, record, decide, alert, remember.
public enum HealthWatch {
    /// Holds the molt's state lock for the whole run, so overlapping runs
    /// (a slow mailer, a manual run) cannot both send the same alert.
    public static func run(molt: Molt, fleet: Fleet, options: WatchOptions, now: Date = Date()) -> WatchReport {
        let files = HealthStateFiles(directory: StateDirectory(molt: molt), historyPolicy: options.historyPolicy)
        return files.directory.withLock {
            runLocked(molt: molt, fleet: fleet, files: files, options: options, now: now)
        }
    }

    private static func runLocked(molt: Molt, fleet: Fleet, files: HealthStateFiles, options: WatchOptions, now: Date) -> WatchReport {
        var warnings: [String] = []
        var errors: [String] = []
        let previous = files.readWatchState(warnings: &warnings) ?? WatchState()
        let record = HealthChecker.check(molt, options: options.check, now: now)
        do { try files.recordLocked(record) } catch { errors.append(error.description) }

        let decision = AlertPolicy.decide(previous: previous, record: record, rules: options.rules, molt: molt.name)
        var state = decision.state
        var message: AlertMessage?
        var deliveries: [Delivery] = []
        if let kind = decision.message {
            let due = AlertMessage(kind: kind, molt: molt.name, record: record, state: decision.state)
            message = due
            // Only send what we can remember having sent: an unwritable state
            // file would otherwise mean one alert per run.
            do {
                try files.writeWatchState(decision.state)
                deliveries = AlertSender.send(due, channels: options.channels, fleet: fleet, date: now)
                if deliveries.isEmpty || deliveries.contains(where: \.delivered) {
                    state = AlertPolicy.delivered(kind, state: decision.state)
                }
            } catch {
                errors.append("\(kind.rawValue) not sent: \(error.description)")
                return WatchReport(molt: molt.name, record: record, previous: previous, state: decision.state,
                                   message: message, deliveries: [], warnings: warnings, errors: errors)
            }
        }
        do { try files.writeWatchState(state) } catch { errors.append(error.description) }
        return WatchReport(molt: molt.name, record: record, previous: previous, state: state, message: message,
                           deliveries: deliveries, warnings: warnings, errors: errors)
    }
}

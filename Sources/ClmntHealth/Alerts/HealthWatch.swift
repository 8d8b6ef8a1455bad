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
///
/// Delivery (docs/health.md, "Delivery guarantees"): before a message goes out, the
/// state is written with it in `delivering`; after, with the outcome. A run that
/// finds `delivering` set was killed mid-delivery: the message counts as
/// delivered — **mail at most once** (it is not sent again; a mail program that was
/// killed may or may not have passed it on) — and the **webhook at least once**
/// (re-sent with the same Idempotency-Key, which the commander's gateway uses to
/// run it once). An unusable `health-watch-state.json` is rebuilt from the history
/// (`WatchState.rebuilt`), so an open alert is neither lost nor sent again.
public enum HealthWatch {
    /// Holds the molt's state lock for the whole run, so overlapping runs
    /// (a slow mailer, a manual run) cannot both send the same alert.
    public static func run(molt: Molt, fleet: Fleet, options: WatchOptions, now: Date = Date()) -> WatchReport {
        let files = HealthStateFiles(directory: StateDirectory(molt: molt), historyPolicy: options.historyPolicy)
        return files.directory.withLock { lockWarning in
            runLocked(molt: molt, fleet: fleet, files: files, options: options, now: now, lockWarning: lockWarning)
        }
    }

    private static func runLocked(molt: Molt, fleet: Fleet, files: HealthStateFiles, options: WatchOptions, now: Date,
                                  lockWarning: String?) -> WatchReport {
        var warnings: [String] = lockWarning.map { [$0] } ?? []
        var errors: [String] = []
        let stored = files.readWatchStateFile(warnings: &warnings)
        var previous = stored.state ?? WatchState()
        if stored.unusable {
            previous = WatchState.rebuilt(from: files.history.load().records, threshold: options.rules.threshold, molt: molt.name)
            warnings.append("alert state rebuilt from the history: " + (previous.alertSent
                ? "alert open since \(previous.incidentStart.map(Timestamp.format) ?? "?"), not sent again"
                : "\(previous.consecutiveFailures) failed checks in a row, no alert open"))
        }
        var deliveries: [Delivery] = []
        if let pending = previous.delivering {
            // The run delivering it was killed: it counts as delivered (see above).
            previous.delivering = nil
            previous = AlertPolicy.delivered(pending.kind, state: previous)
            var note = "the \(pending.kind.rawValue) \(pending.key) was being delivered when an earlier run stopped: "
                + "counted as delivered, mail not sent again (at most once)"
            if let commander = options.channels.commander {
                deliveries.append(AlertSender.sendWebhook(summary: pending.summary, key: pending.key, commander: commander,
                                                          fleet: fleet, timeout: options.channels.webhookTimeout))
                note += "; webhook re-sent with the same Idempotency-Key"
            }
            warnings.append(note)
        }
        let record = HealthChecker.check(molt, options: options.check, now: now)
        do { try files.recordLocked(record) } catch { errors.append(error.description) }

        let decision = AlertPolicy.decide(previous: previous, record: record, rules: options.rules, molt: molt.name)
        var state = decision.state
        var message: AlertMessage?
        if let kind = decision.message {
            let due = AlertMessage(kind: kind, molt: molt.name, record: record, state: decision.state)
            message = due
            // Only send what we can remember having sent: an unwritable state
            // file would otherwise mean one alert per run.
            var sending = decision.state
            sending.delivering = PendingDelivery(kind: kind, key: due.idempotencyKey, summary: due.summary, since: now)
            do {
                try files.writeWatchState(sending)
                let sent = AlertSender.send(due, channels: options.channels, fleet: fleet, date: now)
                deliveries += sent
                if sent.isEmpty || sent.contains(where: \.delivered) {
                    state = AlertPolicy.delivered(kind, state: decision.state)
                }
            } catch {
                errors.append("\(kind.rawValue) not sent: \(error.description)")
                return WatchReport(molt: molt.name, record: record, previous: previous, state: decision.state,
                                   message: message, deliveries: deliveries, warnings: warnings, errors: errors)
            }
        }
        do { try files.writeWatchState(state) } catch { errors.append(error.description) }
        return WatchReport(molt: molt.name, record: record, previous: previous, state: state, message: message,
                           deliveries: deliveries, warnings: warnings, errors: errors)
    }
}

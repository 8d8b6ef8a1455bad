import ClmntCore
import Foundation

/// What a health-watch run must announce.
public enum AlertKind: String, Sendable, Equatable {
    /// The threshold of consecutive failures was reached: the first message of an incident.
    case alert
    /// Still failing, `--remind-every` further failures after the last message.
    case reminder
    /// Healthy again after an alert.
    case recovery
}

/// How often to alert.
public struct AlertRules: Sendable, Equatable {
    /// Consecutive failed checks before the alert (default 2).
    public var threshold: Int
    /// Repeat the alert every N further failed checks; nil: never.
    public var remindEvery: Int?

    public init(threshold: Int = 2, remindEvery: Int? = nil) {
        self.threshold = threshold
        self.remindEvery = remindEvery
    }

    public func validate() throws(HealthError) {
        guard threshold >= 1 else { throw .invalidThreshold(threshold) }
        if let remindEvery, remindEvery < 1 { throw .invalidRemindEvery(remindEvery) }
    }
}

/// The alerting state machine, without any I/O: the previous watch state and
/// this check's result give the new state and at most one message to send.
///
/// An alert stays open until a recovery message is delivered: while it is
/// open no second alert goes out, whatever runs are skipped or repeated.
public enum AlertPolicy {
    public struct Decision: Sendable, Equatable {
        /// The state to write when the message (if any) was not delivered.
        public var state: WatchState
        public var message: AlertKind?
    }

    public static func decide(previous: WatchState, record: HealthRecord, rules: AlertRules, molt: String) -> Decision {
        var state = previous
        state.timestamp = record.timestamp
        state.status = record.status
        state.threshold = rules.threshold

        if record.status.isHealthy {
            state.consecutiveFailures = 0
            state.lastSuccess = record.timestamp
            if previous.alertSent {
                // Should the recovery message fail, the alert stays open and reminders count afresh.
                state.lastAlertFailures = 0
                return Decision(state: state, message: .recovery)
            }
            state.incidentID = nil
            state.incidentStart = nil
            state.alertsSent = 0
            state.lastAlertAt = nil
            state.lastAlertFailures = nil
            return Decision(state: state, message: nil)
        }

        state.consecutiveFailures = previous.consecutiveFailures + 1
        if state.incidentStart == nil || (previous.consecutiveFailures == 0 && !previous.alertSent) {
            state.incidentStart = record.timestamp
        }
        if state.incidentID == nil || (previous.consecutiveFailures == 0 && !previous.alertSent) {
            state.incidentID = "\(molt)-\(Timestamp.compact(state.incidentStart ?? record.timestamp))"
        }
        if !previous.alertSent {
            return Decision(state: state, message: state.consecutiveFailures >= rules.threshold ? .alert : nil)
        }
        if let every = rules.remindEvery,
           state.consecutiveFailures - (previous.lastAlertFailures ?? rules.threshold) >= every {
            return Decision(state: state, message: .reminder)
        }
        return Decision(state: state, message: nil)
    }

    /// The state after `message` was delivered (through at least one channel).
    public static func delivered(_ message: AlertKind, state: WatchState) -> WatchState {
        var next = state
        switch message {
        case .alert, .reminder:
            next.alertSent = true
            next.alertsSent += 1
            next.lastAlertAt = state.timestamp
            next.lastAlertFailures = state.consecutiveFailures
        case .recovery:
            next.alertSent = false
            next.incidentID = nil
            next.incidentStart = nil
            next.alertsSent = 0
            next.lastAlertAt = nil
            next.lastAlertFailures = nil
        }
        return next
    }
}

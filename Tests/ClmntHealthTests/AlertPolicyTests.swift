import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
@testable import ClmntHealth

/// The alerting state machine, run over sequences of checks.
@Suite(.tags(.fast)) struct AlertPolicyTests {
    let start = Timestamp.parse("2026-11-28T10:00:00Z")!

    /// Runs the policy over `statuses` (one per 5 minutes); `deliver` says whether sending works at step i.
    func run(_ statuses: [HealthStatus], rules: AlertRules = AlertRules(), from initial: WatchState = WatchState(),
             deliver: (Int) -> Bool = { _ in true }) -> (messages: [(Int, AlertKind)], state: WatchState) {
        var state = initial
        var messages: [(Int, AlertKind)] = []
        for (step, status) in statuses.enumerated() {
            let record = HealthRecord(timestamp: start.addingTimeInterval(Double(step) * 300), status: status)
            let decision = AlertPolicy.decide(previous: state, record: record, rules: rules, molt: "alpha")
            state = decision.state
            if let message = decision.message {
                messages.append((step, message))
                if deliver(step) { state = AlertPolicy.delivered(message, state: decision.state) }
            }
        }
        return (messages, state)
    }

    @Test func oneAlertAfterTheThresholdNotOnePerRun() {
        let result = run([.healthy, .dead, .dead, .dead, .dead, .dead])
        #expect(result.messages.map(\.0) == [2])
        #expect(result.messages.map(\.1) == [.alert])
        #expect(result.state.consecutiveFailures == 5)
        #expect(result.state.alertSent)
        #expect(result.state.incidentStart == start.addingTimeInterval(300))
        #expect(result.state.lastSuccess == start)
    }

    @Test func thresholdOfThree() {
        let result = run([.unhealthy, .unhealthy, .healthy, .unhealthy, .unhealthy, .unhealthy], rules: AlertRules(threshold: 3))
        #expect(result.messages.map(\.0) == [5])
        #expect(result.state.incidentStart == start.addingTimeInterval(3 * 300))
    }

    @Test func recoveryOnceAfterAnAlertWithTheOutage() {
        let result = run([.dead, .dead, .dead, .healthy, .healthy])
        #expect(result.messages.map(\.1) == [.alert, .recovery])
        #expect(result.messages.map(\.0) == [1, 3])
        #expect(!result.state.alertSent)
        #expect(result.state.incidentID == nil)
        #expect(result.state.consecutiveFailures == 0)
    }

    @Test func noRecoveryWithoutAnAlert() {
        let result = run([.dead, .healthy, .dead, .healthy])
        #expect(result.messages.isEmpty)
        #expect(!result.state.alertSent)
    }

    @Test func remindersEveryNFurtherFailures() {
        let result = run(Array(repeating: .dead, count: 9), rules: AlertRules(threshold: 2, remindEvery: 3))
        #expect(result.messages.map(\.0) == [1, 4, 7])
        #expect(result.messages.map(\.1) == [.alert, .reminder, .reminder])
        #expect(result.state.alertsSent == 3)
    }

    /// Nothing delivered: the alert stays due and goes out on the next run, once.
    @Test func failedDeliveryIsRetriedNextRun() {
        let result = run([.dead, .dead, .dead, .dead], deliver: { $0 != 1 })
        #expect(result.messages.map(\.0) == [1, 2])
        #expect(result.messages.map(\.1) == [.alert, .alert])
        #expect(result.state.alertSent)
        #expect(result.state.alertsSent == 1)
    }

    /// A recovery that could not be delivered keeps the alert open: retried, and no second alert if it fails again.
    @Test func failedRecoveryKeepsTheAlertOpen() {
        let result = run([.dead, .dead, .healthy, .dead, .dead, .dead, .healthy], deliver: { $0 != 2 })
        #expect(result.messages.map(\.1) == [.alert, .recovery, .recovery])
        #expect(result.messages.map(\.0) == [1, 2, 6])
        #expect(!result.state.alertSent)
    }

    /// The state read back from the file decides: a second process never sends a second alert.
    @Test func openAlertFromAnEarlierRunIsNotRepeated() {
        var earlier = WatchState()
        earlier.consecutiveFailures = 7
        earlier.alertSent = true
        earlier.incidentID = "alpha-20261128T093000Z"
        earlier.incidentStart = start.addingTimeInterval(-1800)
        let result = run([.stopped, .stopped], from: earlier)
        #expect(result.messages.isEmpty)
        #expect(result.state.consecutiveFailures == 9)
        #expect(result.state.incidentID == "alpha-20261128T093000Z")
    }

    @Test func messagesCarryTheFacts() throws {
        var state = WatchState()
        state.lastSuccess = start.addingTimeInterval(-900)
        let failing = HealthRecord(timestamp: start, status: .dead, pid: 4242, port: 19001, detail: "PID 4242 from gateway.pid is gone")
        var decision = AlertPolicy.decide(previous: state, record: failing, rules: AlertRules(threshold: 1), molt: "alpha")
        #expect(decision.message == .alert)
        let alert = AlertMessage(kind: .alert, molt: "alpha", record: failing, state: decision.state, host: "host1")
        #expect(alert.subject == "[Claw Mountain] Molt alpha is dead")
        for fact in ["Molt:", "alpha", "Status:", "dead", "Timestamp:", "2026-11-28T10:00:00Z", "Failures:", "1 consecutive",
                     "PID:", "4242", "Port:", "19001", "HTTP status:", "none", "Last success:", "2026-11-28T09:45:00Z"] {
            #expect(alert.body.contains(fact), "body lacks \(fact)")
        }
        #expect(alert.idempotencyKey == "clmnt-health-alpha-20261128T100000Z-alert")

        state = AlertPolicy.delivered(.alert, state: decision.state)
        let healthy = HealthRecord(timestamp: start.addingTimeInterval(3900), status: .healthy, pid: 4300, port: 19001, httpStatus: 200)
        decision = AlertPolicy.decide(previous: state, record: healthy, rules: AlertRules(threshold: 1), molt: "alpha")
        #expect(decision.message == .recovery)
        let recovery = AlertMessage(kind: .recovery, molt: "alpha", record: healthy, state: decision.state, host: "host1")
        #expect(recovery.subject == "[Claw Mountain] Molt alpha is healthy")
        #expect(recovery.body.contains("outage of 1h 05m"))
        #expect(recovery.summary.contains("1h 05m"))
        #expect(recovery.idempotencyKey == "clmnt-health-alpha-20261128T100000Z-recovery")
        let mail = recovery.mail(to: ["ops@example.com"], date: healthy.timestamp)
        #expect(mail.hasPrefix("To: ops@example.com\nSubject: [Claw Mountain] Molt alpha is healthy\n"))
    }

    @Test func rulesAreValidated() {
        #expect(throws: HealthError.invalidThreshold(0)) { try AlertRules(threshold: 0).validate() }
        #expect(throws: HealthError.invalidRemindEvery(0)) { try AlertRules(threshold: 2, remindEvery: 0).validate() }
        #expect(throws: Never.self) { try AlertRules(threshold: 1, remindEvery: 1).validate() }
    }
}

import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// health-watch end to end: a gateway stand-in, a real msmtp delivering to a
/// real SMTP sink, a commander's webhook receiver on loopback.
@Suite struct WatchTests {
    /// A fleet with `alpha` (watched, gateway `gateway`) and `boss` (commander, hooks served by `hooks`).
    struct Scene {
        let fleet: FleetFixture
        let gateway: HTTPStub
        let hooks: HTTPStub
        let sink: SMTPSink
        let child: ChildProcess
        let mailer: [String]

        init(hooksConfig: String? = nil) throws {
            fleet = try FleetFixture.bare()
            gateway = try HTTPStub(.respond(status: 500, body: "internal error", contentType: "text/plain"))
            hooks = try HTTPStub(.respond(status: 200, body: #"{"ok":true,"runId":"r1"}"#, contentType: "application/json"))
            sink = try SMTPSink(dir: fleet.base)
            child = try ChildProcess()
            try fleet.addMolt("alpha", port: gateway.port)
            try fleet.setPIDFile("alpha", child.pid)
            try fleet.addMolt("boss", port: hooks.port, config: hooksConfig ?? """
            { gateway: { port: \(hooks.port) }, hooks: { enabled: true, token: "s3cret-hook-token", path: "/ingress/" } }
            """)
            mailer = ["/usr/bin/msmtp", "-C", try msmtpConfig(in: fleet.base, port: sink.port)]
        }

        func options(threshold: Int = 2, remindEvery: Int? = nil, emails: [String] = ["ops@example.com"],
                     commander: String? = "boss", mailer: [String]? = nil) -> WatchOptions {
            WatchOptions(check: CheckOptions(timeout: 1, finder: GatewayProcessFinder(tempDirs: [fleet.base])),
                         rules: AlertRules(threshold: threshold, remindEvery: remindEvery),
                         channels: AlertChannels(emails: emails, mailer: mailer ?? self.mailer, commander: commander, webhookTimeout: 2))
        }

        func watch(_ options: WatchOptions, at date: Date) throws -> WatchReport {
            HealthWatch.run(molt: try fleet.molt("alpha"), fleet: try fleet.fleet(), options: options, now: date)
        }

        /// Mails `subject` through the same mailer and sink: delivered after anything a watch run mailed before it.
        func mailMarker(_ subject: String) throws {
            try ProgramRunner.run(mailer[0], Array(mailer.dropFirst()) + ["ops@example.com"],
                                  input: Data("Subject: \(subject)\n\n\(subject)\n".utf8), timeout: 30)
        }

        func tearDown() {
            sink.stop()
            gateway.stop()
            hooks.stop()
            child.kill()
            fleet.remove()
        }
    }

    let start = Timestamp.parse("2026-11-28T10:00:00Z")!
    func at(_ step: Int) -> Date { start.addingTimeInterval(Double(step) * 300) }

    @Test func oneAlertByMailAndWebhookThenOneRecovery() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let options = scene.options()
        for step in 0..<4 {
            let report = try scene.watch(options, at: at(step))
            #expect(report.record.status == .unhealthy)
            #expect(report.errors.isEmpty)
            #expect(report.state.consecutiveFailures == step + 1)
            #expect(report.message?.kind == (step == 1 ? .alert : nil))
            if step == 1 {
                let failed = report.deliveries.filter { !$0.delivered }
                #expect(report.deliveries.count == 2)
                #expect(failed.isEmpty, "\(failed)")
            }
        }
        // Exactly one mail, with the subject and the facts.
        let mails = scene.sink.waitForMessages(1)
        #expect(mails.count == 1)
        let mail = try #require(mails.first)
        #expect(mail.contains("Subject: [Claw Mountain] Molt alpha is unhealthy"))
        #expect(mail.contains("To: ops@example.com"))
        for fact in ["Molt:", "Status:", "Timestamp:", "2026-11-28T10:05:00Z", "Failures:", "2 consecutive", "PID:", "\(scene.child.pid)",
                     "Port:", "\(scene.gateway.port)", "HTTP status:", "500", "Last success:"] {
            #expect(mail.contains(fact), "mail lacks \(fact)")
        }
        // Exactly one webhook, to the commander's hooks path, with its token and an idempotency key.
        var posts = scene.hooks.requests
        #expect(posts.count == 1)
        let post = try #require(posts.first)
        #expect(post.method == "POST")
        #expect(post.path == "/ingress/agent")
        #expect(post.headers["authorization"] == "Bearer s3cret-hook-token")
        #expect(post.headers["content-type"] == "application/json")
        let key = try #require(post.headers["idempotency-key"])
        #expect(key == "clmnt-health-alpha-20261128T100000Z-alert")
        let body = try #require(try JSONSerialization.jsonObject(with: post.body) as? [String: Any])
        #expect(body["name"] as? String == "Claw Mountain health")
        #expect(body["sessionMode"] as? String == "isolated")
        #expect(body["wakeMode"] as? String == "now")
        #expect((body["message"] as? String)?.contains("alpha is unhealthy") == true)

        // Healthy again: one recovery through both channels, with the outage.
        scene.gateway.setMode(.healthy)
        let recovered = try scene.watch(options, at: at(6))
        #expect(recovered.record.status == .healthy)
        #expect(recovered.message?.kind == .recovery)
        #expect(!recovered.state.alertSent)
        _ = try scene.watch(options, at: at(7))
        let all = scene.sink.waitForMessages(2)
        #expect(all.count == 2)
        let recovery = try #require(all.first { $0.contains("is healthy") })
        #expect(recovery.contains("Subject: [Claw Mountain] Molt alpha is healthy"))
        #expect(recovery.contains("outage of 30m 00s"))
        posts = scene.hooks.requests
        #expect(posts.count == 2)
        #expect(posts.last?.headers["idempotency-key"] == "clmnt-health-alpha-20261128T100000Z-recovery")
        #expect(posts.last.map { String(decoding: $0.body, as: UTF8.self).contains("healthy again") } == true)

        // Every run is in the history.
        #expect(scene.fleet.read("alpha", "health-history.jsonl")?.split(separator: "\n").count == 6)
    }

    /// Before: a corrupt `health-watch-state.json` with an alert open started a fresh
    /// count, and two runs later the same alert went out again (mail and webhook).
    /// Now the open incident is rebuilt from the history: no second alert, and the recovery still comes.
    @Test func corruptWatchStateDoesNotSendTheAlertAgain() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let options = scene.options()
        _ = try scene.watch(options, at: at(0))
        #expect(try scene.watch(options, at: at(1)).message?.kind == .alert)
        try "{\"alert_sent\": tru".write(toFile: scene.fleet.stateFile("alpha", "health-watch-state.json"), atomically: true, encoding: .utf8)
        let rebuilt = try scene.watch(options, at: at(2))
        #expect(rebuilt.message == nil)
        #expect(rebuilt.state.alertSent)
        #expect(rebuilt.state.consecutiveFailures == 3)
        #expect(rebuilt.state.incidentID == "alpha-20261128T100000Z")
        #expect(rebuilt.warnings.contains { $0.contains("alert state rebuilt from the history: alert open since 2026-11-28T10:00:00Z") })
        for step in 3..<5 { #expect(try scene.watch(options, at: at(step)).message == nil) }
        #expect(scene.hooks.requests.count == 1)

        scene.gateway.setMode(.healthy)
        #expect(try scene.watch(options, at: at(5)).message?.kind == .recovery)
        let mails = scene.sink.waitForMessages(2)
        #expect(mails.count == 2)
        #expect(mails.filter { $0.contains("X-Clmnt-Alert: alert") }.count == 1)
        #expect(scene.hooks.requests.map { $0.headers["idempotency-key"] ?? "" }
                == ["clmnt-health-alpha-20261128T100000Z-alert", "clmnt-health-alpha-20261128T100000Z-recovery"])
    }

    /// A run killed while delivering leaves `delivering` in the state: the next run
    /// counts the message as delivered, mails nothing (at most once) and re-sends the
    /// webhook with the same Idempotency-Key (at least once; the commander runs it once).
    @Test func interruptedDeliveryIsNotMailedAgainButTheWebhookIsResent() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let options = scene.options()
        _ = try scene.watch(options, at: at(0))
        // As a run killed inside the mailer leaves it (written before the mailer ran).
        var warnings: [String] = []
        var state = try #require(HealthStateFiles(molt: try scene.fleet.molt("alpha")).readWatchState(warnings: &warnings))
        state.consecutiveFailures = 2
        state.delivering = PendingDelivery(kind: .alert, key: "clmnt-health-alpha-20261128T100000Z-alert",
                                           summary: "Molt alpha is unhealthy (interrupted)", since: at(1))
        try HealthStateFiles(molt: try scene.fleet.molt("alpha")).writeWatchState(state)

        let next = try scene.watch(options, at: at(2))
        #expect(next.message == nil)
        #expect(next.state.alertSent)
        #expect(next.state.delivering == nil)
        #expect(next.warnings.contains { $0.contains("mail not sent again (at most once); webhook re-sent with the same Idempotency-Key") })
        #expect(scene.hooks.requests.count == 1)
        #expect(scene.hooks.requests.first?.headers["idempotency-key"] == "clmnt-health-alpha-20261128T100000Z-alert")
        #expect(scene.hooks.requests.first.map { String(decoding: $0.body, as: UTF8.self).contains("(interrupted)") } == true)
        _ = try scene.watch(options, at: at(3))
        // Nothing was mailed. A marker mailed now through the same sink arrives after any mail of the
        // run above: once it is there, the run's mail would be too.
        let marker = "Subject: marker after the runs"
        try scene.mailMarker("marker after the runs")
        #expect(waitUntil { scene.sink.messages().contains { $0.contains(marker) } }, "the marker mail never arrived")
        #expect(scene.sink.messages().filter { !$0.contains(marker) }.isEmpty)
        #expect(scene.hooks.requests.count == 1)
    }

    /// Before: root read the commander's `openclaw.json` by path; its user linked it to
    /// another molt's config and root posted that molt's hooks token to the commander's port.
    @Test func commanderConfigThatIsALinkIsRefused() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        try scene.fleet.addMolt("victim", port: 19999, config: """
        { gateway: { port: 19999 }, hooks: { enabled: true, token: "victim-secret-token" } }
        """)
        let bossConfig = scene.fleet.base + "/boss/.openclaw/openclaw.json"
        unlink(bossConfig)
        symlink(scene.fleet.base + "/victim/.openclaw/openclaw.json", bossConfig)
        let options = scene.options()
        _ = try scene.watch(options, at: at(0))
        let report = try scene.watch(options, at: at(1))
        #expect(report.message?.kind == .alert)
        let webhook = try #require(report.deliveries.first { $0.channel.contains("webhook") })
        #expect(webhook.error?.contains("is a symlink where a file is expected") == true, "\(webhook)")
        #expect(scene.hooks.requests.isEmpty)
    }

    /// Before: while the commander's gateway was down, any local user could bind its port
    /// and root posted the commander's hooks token to it on the next alert. Now the token
    /// goes only to a listener owned by the commander's user; the mail still goes.
    @Test func webhookTokenGoesOnlyToTheCommandersOwnListener() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let squatter = try TestUser()
        defer { squatter.remove() }
        let commanderUser = try TestUser()
        defer { commanderUser.remove() }
        // The commander molt belongs to its own user (owner of its home), its port is free.
        let probe = try HTTPStub(.hang)
        let port = probe.port
        probe.stop()
        let bossHome = try scene.fleet.addMolt("boss", port: port, config: """
        { gateway: { port: \(port) }, hooks: { enabled: true, token: "s3cret-hook-token", path: "/ingress/" } }
        """)
        chown(bossHome, commanderUser.uid, commanderUser.gid)

        // A squatter, as another user, takes the port while the commander's gateway is down.
        let seen = scene.fleet.base + "/squatter-saw"
        let squat = try PortListener(port: port, user: squatter, output: seen, dir: scene.fleet.base)
        let report = try scene.watch(scene.options(threshold: 1), at: at(0))
        let webhook = try #require(report.deliveries.first { $0.channel.contains("webhook") })
        #expect(webhook.error?.contains("webhook skipped: the listener on 127.0.0.1:\(port) is held by uid \(squatter.uid)") == true,
                "\(webhook)")
        #expect(webhook.error?.contains("not uid \(commanderUser.uid)") == true, "\(webhook)")
        #expect(report.deliveries.first { $0.channel.hasPrefix("mail") }?.delivered == true, "\(report.deliveries)")
        #expect(scene.sink.waitForMessages(1).count == 1)
        // It was reached (the check is on the connection it accepted), and got nothing.
        let squatterLog = squat.waitFor("accepted")
        squat.stop()
        #expect(squatterLog.contains("accepted"), "the squatter was never reached: \(squatterLog)")
        #expect(!squatterLog.contains("s3cret"), "the token went to the squatter: \(squatterLog)")
        #expect(!squatterLog.contains("POST"), "\(squatterLog)")

        // The commander's own user on the same port gets the alert, token and all.
        let own = try PortListener(port: port, user: commanderUser, output: scene.fleet.base + "/commander-saw", dir: scene.fleet.base)
        let delivery = AlertSender.sendWebhook(summary: "Molt alpha is unhealthy", key: "clmnt-health-test", commander: "boss",
                                               fleet: try scene.fleet.fleet(), timeout: 5)
        let ownLog = own.waitFor("s3cret")
        own.stop()
        #expect(delivery.delivered, "\(delivery)")
        #expect(ownLog.contains("Authorization: Bearer s3cret-hook-token"), "\(ownLog)")
    }

    @Test func remindersWhileStillFailing() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let options = scene.options(threshold: 2, remindEvery: 2, commander: nil)
        let kinds = try (0..<6).map { try scene.watch(options, at: at($0)).message?.kind }
        #expect(kinds == [nil, .alert, nil, .reminder, nil, .reminder])
        let mails = scene.sink.waitForMessages(3)
        #expect(mails.count == 3)
        #expect(mails.filter { $0.contains("Reminder: molt alpha is still unhealthy") }.count == 2)
    }

    /// A mailer that fails is logged; the state is still written and the alert retried next run.
    @Test func failingMailerDoesNotStopTheStateUpdate() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        // A port that refuses, held for the whole test (one found free and released could be taken meanwhile).
        let closed = try RefusingPort()
        defer { closed.release() }
        let deadPort = closed.port
        let broken = ["/usr/bin/msmtp", "-C", try msmtpConfig(in: scene.fleet.base + "/alpha", port: deadPort)]
        let options = scene.options(commander: nil, mailer: broken)
        _ = try scene.watch(options, at: at(0))
        let report = try scene.watch(options, at: at(1))
        #expect(report.message?.kind == .alert)
        #expect(report.deliveries.count == 1)
        #expect(report.deliveries[0].error?.contains("msmtp failed") == true)
        #expect(report.errors.isEmpty)
        #expect(!report.state.alertSent)
        #expect(report.state.consecutiveFailures == 2)
        var warnings: [String] = []
        let files = HealthStateFiles(directory: StateDirectory(molt: try scene.fleet.molt("alpha")))
        #expect(files.readWatchState(warnings: &warnings)?.consecutiveFailures == 2)
        #expect(files.readStatus(warnings: &warnings)?.httpStatus == 500)

        // A mailer that is not installed at all: the same.
        let missing = try scene.watch(scene.options(commander: nil, mailer: ["/nonexistent/sendmail"]), at: at(2))
        #expect(missing.deliveries.first?.error?.contains("/nonexistent/sendmail is not installed") == true)
        #expect(missing.state.consecutiveFailures == 3)

        // With the working msmtp, the still-open alert goes out once.
        let retried = try scene.watch(scene.options(commander: nil), at: at(3))
        #expect(retried.message?.kind == .alert)
        #expect(retried.state.alertSent)
        #expect(scene.sink.waitForMessages(1).count == 1)
        let quiet = try scene.watch(scene.options(commander: nil), at: at(4))
        #expect(quiet.message == nil)
    }

    @Test func commanderWithHooksDisabledIsReported() throws {
        let scene = try Scene(hooksConfig: #"{ gateway: { port: 19999 }, hooks: { enabled: false, token: "t" } }"#)
        defer { scene.tearDown() }
        let options = scene.options(threshold: 1, emails: [])
        let report = try scene.watch(options, at: at(0))
        #expect(report.message?.kind == .alert)
        #expect(report.deliveries.count == 1)
        #expect(report.deliveries[0].error?.contains("commander boss has hooks disabled") == true)
        #expect(scene.hooks.requests.isEmpty)
    }

    @Test func commanderWithoutTokenIsReported() throws {
        let scene = try Scene(hooksConfig: #"{ gateway: { port: 19999 }, hooks: { enabled: true } }"#)
        defer { scene.tearDown() }
        let report = try scene.watch(scene.options(threshold: 1, emails: []), at: at(0))
        #expect(report.deliveries.first?.error?.contains("commander boss has no hooks token") == true)
        #expect(scene.hooks.requests.isEmpty)
    }

    @Test func webhookRejectedByTheCommanderIsReported() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        scene.hooks.setMode(.respond(status: 401, body: #"{"error":"unauthorized"}"#, contentType: "application/json"))
        let report = try scene.watch(scene.options(threshold: 1, emails: []), at: at(0))
        #expect(report.deliveries.first?.error?.contains("answered 401") == true)
        #expect(!report.state.alertSent)
    }

    /// State that cannot be written: nothing is sent (it could not be remembered), and the run says why.
    @Test func unwritableStateSendsNothing() throws {
        let scene = try Scene()
        defer { scene.tearDown() }
        let state = scene.fleet.base + "/alpha/.molt-state"
        try "not a directory".write(toFile: state, atomically: true, encoding: .utf8)
        let report = try scene.watch(scene.options(threshold: 1), at: at(0))
        #expect(!report.errors.isEmpty)
        #expect(report.errors.allSatisfy { $0.contains(".molt-state") })
        #expect(report.deliveries.isEmpty)
        #expect(scene.hooks.requests.isEmpty)
    }

    @Test func emailAddressesAreChecked() throws {
        let parsed = try AlertChannels.parseEmails("ops@example.com, oncall+molts@example.org")
        #expect(parsed == ["ops@example.com", "oncall+molts@example.org"])
        #expect(throws: HealthError.invalidEmail("ops")) { try AlertChannels.parseEmails("ops") }
        #expect(throws: HealthError.invalidEmail("a%b@example.com")) { try AlertChannels.parseEmails("a%b@example.com") }
        #expect(throws: HealthError.invalidEmail("-oQ@example.com")) { try AlertChannels.parseEmails("-oQ@example.com") }
        #expect(throws: HealthError.invalidEmail(" , ")) { try AlertChannels.parseEmails(" , ") }
    }
}

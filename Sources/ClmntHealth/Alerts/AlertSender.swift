import ClmntCore
import Foundation

/// Where alerts go.
public struct AlertChannels: Sendable, Equatable {
    /// Mail recipients; none: no mail.
    public var emails: [String]
    /// A sendmail-compatible command and its arguments (`-i -- <recipients>` are appended).
    public var mailer: [String]
    /// A molt of the same fleet that takes a webhook.
    public var commander: String?
    /// Seconds for the webhook exchange and for the mailer to finish.
    public var webhookTimeout: Double
    public var mailTimeout: Double

    public static let defaultMailer = ["msmtp"]

    public init(emails: [String] = [], mailer: [String] = AlertChannels.defaultMailer, commander: String? = nil,
                webhookTimeout: Double = 10, mailTimeout: Double = 60) {
        self.emails = emails
        self.mailer = mailer.isEmpty ? AlertChannels.defaultMailer : mailer
        self.commander = commander
        self.webhookTimeout = webhookTimeout
        self.mailTimeout = mailTimeout
    }

    public var isEmpty: Bool { emails.isEmpty && commander == nil }

    /// Splits a `--mailer` value into words (no shell: quotes are not interpreted).
    public static func mailerCommand(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// Splits `a@x,b@y` and checks each address.
    public static func parseEmails(_ text: String) throws(HealthError) -> [String] {
        let addresses = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !addresses.isEmpty else { throw .invalidEmail(text) }
        for address in addresses where !isPlausibleEmail(address) { throw .invalidEmail(address) }
        return addresses
    }

    /// `local@domain.tld` of letters, digits and `._+-`: safe as a mailer argument and in a crontab line.
    static func isPlausibleEmail(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              !parts[0].hasPrefix("-") else { return false }
        let local = parts[0].unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._+-".unicodeScalars.contains($0) }
        let domain = parts[1].unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || ".-".unicodeScalars.contains($0) }
        return local && domain
    }
}

/// The outcome of one channel.
public struct Delivery: Sendable, Equatable {
    /// `mail to ops@example.com`, `webhook to commander boss`.
    public let channel: String
    /// Nil when delivered.
    public let error: String?

    public var delivered: Bool { error == nil }
}

/// Sends one message through every configured channel. Never throws: each
/// channel's failure is in its `Delivery`, so the caller can log it and still
/// write the state.
public enum AlertSender {
    public static func send(_ message: AlertMessage, channels: AlertChannels, fleet: Fleet, date: Date = Date()) -> [Delivery] {
        var deliveries: [Delivery] = []
        if !channels.emails.isEmpty {
            deliveries.append(sendMail(message, channels: channels, date: date))
        }
        if let commander = channels.commander {
            deliveries.append(sendWebhook(message, commander: commander, fleet: fleet, timeout: channels.webhookTimeout))
        }
        return deliveries
    }

    static func sendMail(_ message: AlertMessage, channels: AlertChannels, date: Date) -> Delivery {
        let channel = "mail to \(channels.emails.joined(separator: ", "))"
        let program = channels.mailer[0]
        guard ProgramRunner.locate(program) != nil else {
            return Delivery(channel: channel, error: HealthError.noMailer(program: program).description)
        }
        let input = Data(message.mail(to: channels.emails, date: date).utf8)
        do {
            try ProgramRunner.run(program, Array(channels.mailer.dropFirst()) + ["-i", "--"] + channels.emails,
                                  input: input, timeout: channels.mailTimeout)
            return Delivery(channel: channel, error: nil)
        } catch {
            return Delivery(channel: channel, error: error.description)
        }
    }

    static func sendWebhook(_ message: AlertMessage, commander name: String, fleet: Fleet, timeout: Double) -> Delivery {
        sendWebhook(summary: message.summary, key: message.idempotencyKey, commander: name, fleet: fleet, timeout: timeout)
    }

    /// POSTs `summary` to the commander's hooks with `key` as the Idempotency-Key.
    static func sendWebhook(summary: String, key: String, commander name: String, fleet: Fleet, timeout: Double) -> Delivery {
        let channel = "webhook to commander \(name)"
        let commander: Molt
        do { commander = try fleet.molt(named: name) } catch {
            return Delivery(channel: channel, error: error.description)
        }
        let hook: CommanderHook
        switch CommanderHook.resolve(commander) {
        case .failure(let problem): return Delivery(channel: channel, error: problem.description)
        case .success(let resolved): hook = resolved
        }
        // The token goes only to a listener the commander's user owns: while its gateway is down,
        // any local user could bind the port and would otherwise receive it (docs/health.md).
        guard let owner = MoltOwner.of(commander) else {
            return Delivery(channel: channel, error: "cannot tell who owns commander \(name) (no user, no home): webhook skipped")
        }
        let body = JSONOutput.object([
            ("message", .string(summary)),
            ("name", .string("Claw Mountain health")),
            ("sessionMode", .string("isolated")),
            ("wakeMode", .string("now")),
        ]).compact
        let result = LoopbackHTTP.request(
            method: "POST", port: hook.port, path: hook.agentPath,
            headers: [("Authorization", "Bearer \(hook.token)"), ("Content-Type", "application/json"),
                      ("Idempotency-Key", key)],
            body: Data(body.utf8), timeout: timeout, bodyLimit: 4096, listenerOwner: owner.uid)
        switch result {
        case .failure(let failure) where failure.isForeignListener:
            return Delivery(channel: channel, error: "webhook skipped: \(failure)")
        case .failure(let failure):
            return Delivery(channel: channel, error: "POST 127.0.0.1:\(hook.port)\(hook.agentPath): \(failure)")
        case .success(let response) where (200..<300).contains(response.status):
            return Delivery(channel: channel, error: nil)
        case .success(let response):
            let snippet = String(decoding: response.body.prefix(200), as: UTF8.self)
                .replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
            return Delivery(channel: channel, error: "POST 127.0.0.1:\(hook.port)\(hook.agentPath) answered \(response.status)"
                            + (snippet.isEmpty ? "" : ": \(snippet)"))
        }
    }
}

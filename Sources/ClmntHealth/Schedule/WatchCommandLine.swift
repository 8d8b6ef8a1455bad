import ClmntCore
import Foundation

/// The `health-watch` options a schedule passes on.
public struct WatchSettings: Sendable, Equatable {
    public var emails: [String]
    public var threshold: Int?
    public var commander: String?
    public var remindEvery: Int?
    public var timeout: Double?
    public var mailer: [String]?
    public var ready: Bool

    public init(emails: [String] = [], threshold: Int? = nil, commander: String? = nil, remindEvery: Int? = nil,
                timeout: Double? = nil, mailer: [String]? = nil, ready: Bool = false) {
        self.emails = emails
        self.threshold = threshold
        self.commander = commander
        self.remindEvery = remindEvery
        self.timeout = timeout
        self.mailer = mailer
        self.ready = ready
    }
}

/// When and how a molt's `health-watch` runs: the pieces a crontab line and a
/// systemd unit share. Everything in it is checked to be safe there: the molt
/// name is a valid `MoltName`, paths are absolute and made of `[A-Za-z0-9._/+,:@-]`
/// (no `%`, which cron turns into a newline, no spaces, quotes, `$` or newlines).
public struct WatchSchedule: Sendable, Equatable {
    public let molt: String
    public let interval: Int
    public let offset: Int
    /// The absolute path of the clmnt binary: cron's PATH is bare.
    public let executable: String
    public let baseDir: String
    public let logPath: String
    public let settings: WatchSettings

    public static let marker = "MOLT-HEALTH-WATCH"

    public init(molt: Molt, baseDir: String, executable: String, interval: Int = 5, offset: Int? = nil,
                settings: WatchSettings = WatchSettings()) throws(HealthError) {
        try validateMoltName(molt.name)
        guard WatchSchedule.isValidInterval(interval) else { throw .invalidInterval(interval) }
        // Hourly and longer intervals run at one minute of the hour: the offset picks it.
        let minuteSpan = min(interval, 60)
        let offset = offset ?? WatchSchedule.defaultOffset(port: molt.port, name: molt.name, interval: minuteSpan)
        guard offset >= 0, offset < minuteSpan else { throw .invalidOffset(offset: offset, interval: minuteSpan) }
        try WatchSchedule.checkPath("clmnt binary", executable)
        try WatchSchedule.checkPath("base dir", baseDir)
        try WatchSchedule.checkPath("molt home", molt.home)
        if let threshold = settings.threshold, threshold < 1 { throw .invalidThreshold(threshold) }
        if let remind = settings.remindEvery, remind < 1 { throw .invalidRemindEvery(remind) }
        if let timeout = settings.timeout { try CheckOptions(timeout: timeout).validate() }
        for address in settings.emails where !AlertChannels.isPlausibleEmail(address) { throw .invalidEmail(address) }
        if let commander = settings.commander { try validateMoltName(commander) }
        if let mailer = settings.mailer {
            for word in mailer { try WatchSchedule.checkWord("mailer", word, allowing: "=") }
        }
        self.molt = molt.name
        self.interval = interval
        self.offset = offset
        self.executable = executable
        self.baseDir = baseDir
        self.logPath = molt.stateDir + "/cron.log"
        self.settings = settings
    }

    /// Staggered by port, so a fleet's checks do not all start in the same
    /// minute: ports step by 20, so consecutive molts get consecutive minutes.
    public static func defaultOffset(port: Int?, name: String, interval: Int) -> Int {
        guard interval > 1 else { return 0 }
        if let port { return (port / 20) % interval }
        return name.utf8.reduce(0) { ($0 * 31 + Int($1)) % 10_007 } % interval
    }

    /// Minutes from 1 to 59, or whole hours (60, 120, … 1440) as the bash tool's
    /// `--interval 60` (which meant hourly) allowed.
    public static func isValidInterval(_ minutes: Int) -> Bool {
        (1...59).contains(minutes) || (minutes % 60 == 0 && (60...1440).contains(minutes))
    }

    /// Hours between checks for an interval of whole hours, nil below an hour.
    var hours: Int? { interval >= 60 ? interval / 60 : nil }

    /// "5 min", "1 h", "3 h".
    public var intervalText: String { Self.intervalText(interval) }

    public static func intervalText(_ interval: Int) -> String { interval >= 60 ? "\(interval / 60) h" : "\(interval) min" }

    /// "every 15 min at minutes 7,22,37,52", "every 1 h at minute 7", "every minute".
    public static func timingText(interval: Int, offset: Int) -> String {
        if interval == 1 { return "every minute" }
        if interval >= 60 { return "every \(intervalText(interval)) at minute \(offset)" }
        return "every \(intervalText(interval)) at minutes " + stride(from: offset, to: 60, by: interval).map(String.init).joined(separator: ",")
    }

    /// The cron minute field: `*/5`, `3-59/5`, `*`; for whole hours the one minute, `7`.
    public var minuteField: String {
        if hours != nil { return String(offset) }
        if interval == 1 { return "*" }
        return offset == 0 ? "*/\(interval)" : "\(offset)-59/\(interval)"
    }

    /// The cron hour field: `*`, or `*/3` every 3 hours (counted from midnight, like
    /// cron and systemd count them: 5 h runs at 0, 5, 10, 15, 20).
    public var hourField: String {
        guard let hours, hours > 1 else { return "*" }
        return "*/\(hours)"
    }

    /// The systemd `OnCalendar=` value: `*-*-* *:03/5:00`, `*-*-* 00/3:07:00`.
    public var onCalendar: String {
        if let hours {
            return hours == 1 ? String(format: "*-*-* *:%02d:00", offset) : String(format: "*-*-* 00/%d:%02d:00", hours, offset)
        }
        return interval == 1 ? "*-*-* *:*:00" : String(format: "*-*-* *:%02d/%d:00", offset, interval)
    }

    /// `health-watch` and its options, each word safe unquoted (the mailer, which
    /// may hold spaces, is single-quoted by `quoted`).
    public var arguments: [String] {
        ["molt", "health-watch", molt, "--base-dir", baseDir] + Self.optionWords(settings)
    }

    /// The options of `settings` as health-watch takes them.
    public static func optionWords(_ settings: WatchSettings) -> [String] {
        var words: [String] = []
        if !settings.emails.isEmpty { words += ["--alert-email", settings.emails.joined(separator: ",")] }
        if let threshold = settings.threshold { words += ["--consecutive-failures", String(threshold)] }
        if let commander = settings.commander { words += ["--commander", commander] }
        if let remind = settings.remindEvery { words += ["--remind-every", String(remind)] }
        if let timeout = settings.timeout { words += ["--timeout", JSONOutput.number(timeout)] }
        if let mailer = settings.mailer { words += ["--mailer", mailer.joined(separator: " ")] }
        if settings.ready { words.append("--ready") }
        return words
    }

    /// The command as `sh` (cron) and systemd read it.
    func commandLine(quote: Character) -> String {
        ([executable] + arguments).map { $0.contains(" ") ? "\(quote)\($0)\(quote)" : $0 }.joined(separator: " ")
    }

    /// The two crontab lines: the marker comment and the job.
    public var cronLines: [String] {
        [
            "# \(Self.marker) \(molt): health check every \(intervalText), managed by 'clmnt molt health setup'",
            "\(minuteField) \(hourField) * * * \(commandLine(quote: "'")) >> \(logPath) 2>&1",
        ]
    }

    static func checkPath(_ what: String, _ path: String) throws(HealthError) {
        guard path.hasPrefix("/") else { throw .notAbsolute(what: what, path: path) }
        try checkWord(what, path)
    }

    static func checkWord(_ what: String, _ word: String, allowing extra: String = "") throws(HealthError) {
        if let name = CronTab.unsafeCharacter(in: word, allowing: extra) {
            throw .unsafeForSchedule(what: what, value: word.replacingOccurrences(of: "\n", with: "\\n"), character: name)
        }
    }
}

/// `MoltName.validate` with the health module's error type.
func validateMoltName(_ name: String) throws(HealthError) {
    do { try MoltName.validate(name) } catch { throw .fleet(error) }
}

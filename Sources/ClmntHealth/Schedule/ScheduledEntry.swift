import ClmntCore
import Foundation

/// The health-watch entry a molt's crontab holds now, clmnt's or the bash tool's,
/// read back into the settings `health setup` would give it: running setup again
/// keeps them unless a flag changes them (see `SetupOptions.merged`).
///
/// The crontab belongs to the molt's user: what is read here is data, checked
/// again by `WatchSchedule` before any of it is written back.
public struct ScheduledEntry: Sendable, Equatable {
    public enum Origin: Sendable, Equatable {
        /// `clmnt molt health-watch NAME --base-dir DIR ...`.
        case clmnt
        /// `.../health-watch NAME --alert-email A --consecutive-failures N --verbose` (claw-mountain).
        case bashTool
    }

    public var origin: Origin
    /// Minutes between checks and the first minute, as the cron fields say; nil
    /// when the fields are not a regular interval (`minutes` then says what they were).
    public var interval: Int?
    public var offset: Int?
    /// The cron minute and hour fields as found.
    public var minutes: String
    public var hours: String
    /// `--base-dir` of clmnt's job; nil for the bash tool's (its base dir was its script's).
    public var baseDir: String?
    /// The job's program: clmnt's binary or the bash tool's `health-watch` script.
    public var executable: String
    public var settings: WatchSettings
    /// Read from the `--systemd` units (runs as root) rather than the molt's crontab.
    public var viaSystemd = false
    /// Options whose value clmnt cannot use (`--consecutive-failures x`): named, never guessed.
    public var unusable: [(option: String, value: String)]

    public static func == (lhs: ScheduledEntry, rhs: ScheduledEntry) -> Bool {
        lhs.origin == rhs.origin && lhs.interval == rhs.interval && lhs.offset == rhs.offset && lhs.minutes == rhs.minutes
            && lhs.hours == rhs.hours && lhs.baseDir == rhs.baseDir && lhs.viaSystemd == rhs.viaSystemd && lhs.executable == rhs.executable && lhs.settings == rhs.settings
            && lhs.unusable.map { "\($0.option)=\($0.value)" } == rhs.unusable.map { "\($0.option)=\($0.value)" }
    }

    /// The base dir the job watches: its `--base-dir`, or for the bash tool's job the
    /// directory holding its `.scripts/` (the script found its fleet there).
    public var watchedBaseDir: String? {
        if let baseDir { return baseDir }
        guard origin == .bashTool, let range = executable.range(of: "/.scripts/") else { return nil }
        let root = String(executable[..<range.lowerBound])
        return root.isEmpty ? "/" : root
    }

    public var originText: String { origin == .clmnt ? "the current entry" : "the bash tool's crontab entry" }

    /// The entry of `molt` in a crontab's text, nil when it has no job line.
    public static func parse(crontab text: String, molt: String) -> ScheduledEntry? {
        let job = CronTab.entryLines(in: text, molt: molt).first { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("#")
        }
        guard let job else { return nil }
        return parse(job: job, molt: molt)
    }

    /// The entry `health setup --systemd` wrote: the service's `ExecStart=` and the timer's `OnCalendar=`.
    public static func parse(service: String, timer: String) -> ScheduledEntry? {
        func value(_ text: String, _ key: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        guard let exec = value(service, "ExecStart") else { return nil }
        var words = shellWords(exec)
        guard !words.isEmpty else { return nil }
        let executable = words.removeFirst()
        let calendar = value(timer, "OnCalendar") ?? ""
        var entry = ScheduledEntry(origin: .clmnt, interval: nil, offset: nil, minutes: calendar, hours: "", baseDir: nil,
                                   executable: executable, settings: WatchSettings(), unusable: [])
        entry.viaSystemd = true
        if let (interval, offset) = Self.interval(onCalendar: calendar) {
            entry.interval = interval
            entry.offset = offset
        }
        entry.readOptions(words)
        return entry
    }

    /// The `OnCalendar=` values `WatchSchedule.onCalendar` writes, read back.
    static func interval(onCalendar: String) -> (interval: Int, offset: Int)? {
        guard onCalendar.hasPrefix("*-*-* "), onCalendar.hasSuffix(":00") else { return nil }
        let time = onCalendar.dropFirst(6).dropLast(3).split(separator: ":", omittingEmptySubsequences: false)
        guard time.count == 2 else { return nil }
        let hour = time[0], minute = time[1]
        if minute == "*" { return hour == "*" ? (1, 0) : nil }
        if hour == "*" {
            if let offset = Int(minute) { return (60, offset) }
            let parts = minute.split(separator: "/")
            guard parts.count == 2, let offset = Int(parts[0]), let step = Int(parts[1]) else { return nil }
            return (step, offset)
        }
        let parts = hour.split(separator: "/")
        guard parts.count == 2, parts[0] == "00", let hours = Int(parts[1]), let offset = Int(minute) else { return nil }
        return (60 * hours, offset)
    }

    /// One crontab job line: five time fields, the program, its words up to the redirection.
    static func parse(job: String, molt: String) -> ScheduledEntry? {
        var words = shellWords(job)
        guard words.count >= 6, !words[0].hasPrefix("@") else { return nil }
        let minutes = words[0], hours = words[1]
        words.removeFirst(5)
        let executable = words.removeFirst()
        let arguments = Array(words.prefix { !$0.hasPrefix(">") && !$0.hasPrefix("2>") })
        let origin: Origin = arguments.starts(with: ["molt", "health-watch"]) ? .clmnt : .bashTool
        var entry = ScheduledEntry(origin: origin, interval: nil, offset: nil, minutes: minutes, hours: hours, baseDir: nil,
                                   executable: executable, settings: WatchSettings(), unusable: [])
        if let (interval, offset) = Self.interval(minutes: minutes, hours: hours) {
            entry.interval = interval
            entry.offset = offset
        }
        entry.readOptions(arguments)
        return entry
    }

    private mutating func readOptions(_ arguments: [String]) {
        var index = 0
        func value(_ word: String, _ name: String) -> String? {
            if word == name, index + 1 < arguments.count {
                index += 1
                return arguments[index]
            }
            return word.hasPrefix(name + "=") ? String(word.dropFirst(name.count + 1)) : nil
        }
        func number<T: LosslessStringConvertible>(_ text: String, _ option: String, as: T.Type) -> T? {
            if let number = T(text) { return number }
            unusable.append((option, text))
            return nil
        }
        while index < arguments.count {
            let word = arguments[index]
            if let text = value(word, "--base-dir") {
                baseDir = text
            } else if let text = value(word, "--alert-email") {
                let emails = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                settings.emails = emails
            } else if let text = value(word, "--consecutive-failures") {
                settings.threshold = number(text, "--consecutive-failures", as: Int.self)
            } else if let text = value(word, "--commander") {
                settings.commander = text
            } else if let text = value(word, "--remind-every") {
                settings.remindEvery = number(text, "--remind-every", as: Int.self)
            } else if let text = value(word, "--timeout") {
                settings.timeout = number(text, "--timeout", as: Double.self)
            } else if let text = value(word, "--mailer") {
                settings.mailer = text.split(separator: " ").map(String.init)
            } else if word == "--ready" {
                settings.ready = true
            }
            index += 1
        }
    }

    /// The interval and offset a cron minute and hour field run at, nil when they
    /// are not one regular interval. Reads clmnt's forms (`*`, `*/5`, `3-59/5`,
    /// `7` with `*` or `*/3`) and the bash tool's list (`7,22,37,52`; a single
    /// minute is hourly, as its `--interval 60` wrote it).
    static func interval(minutes: String, hours: String) -> (interval: Int, offset: Int)? {
        func minute(_ text: Substring) -> Int? { Int(text).flatMap { (0...59).contains($0) ? $0 : nil } }
        var hourly = 1
        if hours.hasPrefix("*/"), let every = Int(hours.dropFirst(2)), (1...24).contains(every) {
            hourly = every
        } else if hours != "*" {
            return nil
        }
        if let single = minute(Substring(minutes)) { return (60 * hourly, single) }
        guard hourly == 1 else { return nil }
        if minutes == "*" { return (1, 0) }
        if minutes.hasPrefix("*/"), let step = Int(minutes.dropFirst(2)), (1...59).contains(step) { return (step, 0) }
        let stepped = minutes.split(separator: "/")
        if stepped.count == 2, let step = Int(stepped[1]), (1...59).contains(step) {
            let range = stepped[0].split(separator: "-")
            guard range.count == 2, let first = minute(range[0]), range[1] == "59", first < step else { return nil }
            return (step, first)
        }
        let list = minutes.split(separator: ",", omittingEmptySubsequences: false).map(minute)
        guard list.count >= 2, list.allSatisfy({ $0 != nil }) else { return nil }
        let values = list.map { $0! }
        let step = values[1] - values[0]
        guard step > 0, values[0] < step else { return nil }
        // The bash tool listed offset, offset+interval, ... below 60: exactly what `offset-59/interval` runs.
        let expected = Array(stride(from: values[0], to: 60, by: step))
        return values == expected ? (step, values[0]) : nil
    }

    /// Words of a crontab command as `sh` splits them, for the quoting clmnt writes
    /// (single quotes around a mailer with spaces) and the bash tool's plain words.
    static func shellWords(_ line: String) -> [String] {
        var words: [String] = []
        var current = "", inWord = false, quote: Character?
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}

/// What `health setup` was given: each nil option keeps the current entry's value.
/// An empty `emails`, `commander` or `mailer` removes that setting.
public struct SetupOptions: Sendable {
    public var interval: Int?
    public var offset: Int?
    public var emails: [String]?
    public var threshold: Int?
    public var commander: String?
    public var remindEvery: Int?
    public var timeout: Double?
    public var mailer: [String]?
    public var ready: Bool?
    /// Keep nothing from the current entry: what is not given takes its default.
    public var fresh: Bool

    public init(interval: Int? = nil, offset: Int? = nil, emails: [String]? = nil, threshold: Int? = nil,
                commander: String? = nil, remindEvery: Int? = nil, timeout: Double? = nil, mailer: [String]? = nil,
                ready: Bool? = nil, fresh: Bool = false) {
        self.interval = interval
        self.offset = offset
        self.emails = emails
        self.threshold = threshold
        self.commander = commander
        self.remindEvery = remindEvery
        self.timeout = timeout
        self.mailer = mailer
        self.ready = ready
        self.fresh = fresh
    }

    public static let defaultInterval = 5

    /// The schedule's interval, offset (nil: from the port) and settings: what is given,
    /// else what `current` has. `notes` says, per setting, what was kept from the
    /// current entry, changed or removed, and when its timing could not be kept.
    public func merged(with current: ScheduledEntry?) -> (interval: Int, offset: Int?, settings: WatchSettings, notes: [String]) {
        var notes: [String] = []
        guard let current, !fresh else {
            if let current, fresh { notes += SetupOptions().removedByFresh(current) }
            return (interval ?? Self.defaultInterval, offset, given(over: WatchSettings()), notes)
        }
        let from = current.originText
        let kept = current.origin == .bashTool ? "carried over from \(from)" : "kept from \(from)"
        var settings = current.settings
        func apply<T: Equatable>(_ option: String, _ new: T?, _ old: T?, isRemoval: (T) -> Bool, text: (T) -> String,
                                 set: (T?) -> Void) {
            guard let new else {
                if let old { notes.append("\(kept): \(option) \(text(old))") }
                return
            }
            if isRemoval(new) {
                if let old { notes.append("removed \(option) \(text(old))") }
                set(nil)
            } else {
                if let old, old != new { notes.append("changed \(option) \(text(old)) → \(text(new))") }
                set(new)
            }
        }
        apply("--alert-email", emails, settings.emails.isEmpty ? nil : settings.emails, isRemoval: { $0.isEmpty },
              text: { $0.joined(separator: ",") }, set: { settings.emails = $0 ?? [] })
        apply("--consecutive-failures", threshold, current.settings.threshold, isRemoval: { _ in false },
              text: { String($0) }, set: { settings.threshold = $0 })
        apply("--commander", commander, current.settings.commander, isRemoval: { $0.isEmpty }, text: { $0 },
              set: { settings.commander = $0 })
        apply("--remind-every", remindEvery, current.settings.remindEvery, isRemoval: { _ in false },
              text: { String($0) }, set: { settings.remindEvery = $0 })
        apply("--timeout", timeout, current.settings.timeout, isRemoval: { _ in false },
              text: { JSONOutput.number($0) }, set: { settings.timeout = $0 })
        apply("--mailer", mailer, current.settings.mailer, isRemoval: { $0.isEmpty },
              text: { $0.joined(separator: " ") }, set: { settings.mailer = $0 })
        if let ready {
            if ready != current.settings.ready { notes.append(ready ? "added --ready" : "removed --ready") }
            settings.ready = ready
        } else if current.settings.ready {
            notes.append("\(kept): --ready")
        }

        // The timing: given, else the current entry's, else said why not.
        var interval = self.interval, offset = self.offset
        if let old = current.interval, let oldOffset = current.offset, WatchSchedule.isValidInterval(old) {
            let oldText = WatchSchedule.timingText(interval: old, offset: oldOffset)
            if interval == nil || interval == old {
                if interval == nil && offset == nil { notes.append("\(kept): \(oldText)") }
                interval = old
                if let offset, offset != oldOffset {
                    notes.append("changed the timing: \(oldText) → \(WatchSchedule.timingText(interval: old, offset: offset))")
                }
                offset = offset ?? oldOffset
            } else if let interval {
                let newText = offset.map { WatchSchedule.timingText(interval: interval, offset: $0) } ?? "every \(WatchSchedule.intervalText(interval))"
                notes.append("changed the timing: \(oldText) → \(newText)")
            }
        } else if interval == nil {
            notes.append("the current entry runs at cron minutes '\(current.minutes)' hours '\(current.hours)', not one regular interval "
                         + "clmnt can write: it now runs every \(Self.defaultInterval) min (give --interval and --offset to choose)")
        }
        return (interval ?? Self.defaultInterval, offset, settings, notes)
    }

    /// Whether `option` (one that takes a number) is given here.
    public func given(_ option: String) -> Bool {
        switch option {
        case "--consecutive-failures": return threshold != nil
        case "--remind-every": return remindEvery != nil
        case "--timeout": return timeout != nil
        default: return false
        }
    }

    /// The given options over `base`, empty values removing.
    private func given(over base: WatchSettings) -> WatchSettings {
        var settings = base
        if let emails { settings.emails = emails }
        if let threshold { settings.threshold = threshold }
        if let commander { settings.commander = commander.isEmpty ? nil : commander }
        if let remindEvery { settings.remindEvery = remindEvery }
        if let timeout { settings.timeout = timeout }
        if let mailer { settings.mailer = mailer.isEmpty ? nil : mailer }
        if let ready { settings.ready = ready }
        return settings
    }

    /// `--fresh`: each setting of the current entry it drops.
    private func removedByFresh(_ current: ScheduledEntry) -> [String] {
        let words = WatchSchedule.optionWords(current.settings)
        return words.isEmpty ? [] : ["--fresh: not kept from \(current.originText): \(words.joined(separator: " "))"]
    }
}

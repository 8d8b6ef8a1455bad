import Foundation

/// Failures of `fleet schedule`; each prints as one line.
public enum BackupScheduleError: Error, Equatable, CustomStringConvertible {
    case invalidTime(String)
    case invalidWeekday(Int)
    case invalidKeep(Int)
    /// A `--keep-daily`/`--keep-weekly`/`--keep-monthly` value that is no policy.
    case invalidRetention(String)
    case notAbsolute(what: String, path: String)
    /// A value that would go into the crontab line holds a character that is unsafe there.
    case unsafeForCrontab(what: String, value: String, character: String)
    case notExecutable(path: String)
    case fleet(FleetError)
    case backupDir(path: String, reason: String)
    case crontab(CronTabError)

    public var description: String {
        switch self {
        case .invalidTime(let value): return "invalid --at '\(value)': give the time of day as HH:MM (00:00 to 23:59)"
        case .invalidWeekday(let value): return "invalid --weekday \(value): give 0 (Sunday) to 6 (Saturday)"
        case .invalidKeep(let value): return "invalid --keep \(value): give 1 or more (the new archive counts as one)"
        case .invalidRetention(let message): return message
        case .notAbsolute(let what, let path): return "\(what) '\(path)' must be an absolute path"
        case .unsafeForCrontab(let what, let value, let character):
            return "\(what) '\(value)' contains \(character), which is unsafe in a crontab line; use a path of letters, digits and ._-/+,:@"
        case .notExecutable(let path): return "cannot schedule \(path): it is not an executable file"
        case .fleet(let error): return error.description
        case .backupDir(let path, let reason): return "cannot use backup dir \(path): \(reason)"
        case .crontab(let error): return error.description
        }
    }

    /// A value the user can correct on the command line (exit 64).
    public var isUsageError: Bool {
        switch self {
        case .invalidTime, .invalidWeekday, .invalidKeep, .invalidRetention, .notAbsolute, .unsafeForCrontab, .fleet(.invalidName): return true
        default: return false
        }
    }
}

import ClmntCore

/// Everything the health module can fail with; each prints as one line an admin can act on.
public enum HealthError: Error, Equatable, CustomStringConvertible {
    case fleet(FleetError)
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    /// A state file or `.molt-state` that root must not use: a symlink, a FIFO, another user's file.
    case unsafeStateFile(path: String, reason: String)
    case invalidInterval(Int)
    case invalidOffset(offset: Int, interval: Int)
    case invalidThreshold(Int)
    case invalidRemindEvery(Int)
    case invalidTimeout(Double)
    case invalidCount(option: String, value: Int)
    case invalidEmail(String)
    /// A value that would go into a crontab line or unit file holds a character that is unsafe there.
    case unsafeForSchedule(what: String, value: String, character: String)
    case notAbsolute(what: String, path: String)
    case noCrontab
    case noMailer(program: String)
    case noSuchUser(String)
    case commanderIsSelf(String)
    case program(action: String, error: ProgramError)
    case logMissing(path: String)
    case jobCannotRun(user: String, reason: String)
    case invalidCarriedOver(option: String, value: String, origin: String)

    public var description: String {
        switch self {
        case .fleet(let error): return error.description
        case .cannotRead(let path, let reason): return "cannot read \(path): \(reason)"
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .unsafeStateFile(let path, let reason): return "refusing \(path): it \(reason)"
        case .invalidInterval(let value): return "invalid interval \(value): give minutes from 1 to 59, or whole hours in minutes (60, 120, ... 1440)"
        case .invalidOffset(let offset, let interval):
            return "invalid offset \(offset): give minutes from 0 to \(interval - 1) (less than the interval \(interval))"
        case .invalidThreshold(let value): return "invalid --consecutive-failures \(value): give 1 or more"
        case .invalidRemindEvery(let value): return "invalid --remind-every \(value): give 1 or more"
        case .invalidTimeout(let value): return "invalid --timeout \(value): give seconds above 0 and at most 300"
        case .invalidCount(let option, let value): return "invalid \(option) \(value): give 1 or more"
        case .invalidEmail(let value): return "invalid e-mail address '\(value)' (expected user@domain; separate several with commas)"
        case .unsafeForSchedule(let what, let value, let character):
            return "\(what) '\(value)' contains \(character), which is unsafe in a crontab line or unit file; use a path of letters, digits and ._-/+,:@"
        case .notAbsolute(let what, let path): return "\(what) '\(path)' must be an absolute path"
        case .noCrontab: return "crontab is not installed (Debian: apt-get install cron), or use --systemd"
        case .noMailer(let program):
            return "cannot send alert mail: \(program) is not installed (Debian: apt-get install msmtp), or name another sendmail-compatible command with --mailer"
        case .noSuchUser(let name):
            return "no Linux user '\(name)': the health check runs as the molt's user, so the molt must have one"
        case .commanderIsSelf(let name): return "molt '\(name)' cannot be its own commander: name another molt with --commander"
        case .program(let action, let error): return "cannot \(action): \(error)"
        case .jobCannotRun(let user, let reason):
            return "refusing to schedule a job that cannot run: user \(user) cannot \(reason); give the home to the molt's user (chown) or use --systemd"
        case .invalidCarriedOver(let option, let value, let origin):
            return "\(origin) has \(option) '\(value)', which clmnt cannot use: give \(option) explicitly (or --fresh)"
        case .logMissing(let path): return "no health log yet: \(path) does not exist (health setup creates it)"
        }
    }
}

extension HealthError {
    /// Input the user can correct on the command line.
    public var isUsageError: Bool {
        switch self {
        case .invalidInterval, .invalidOffset, .invalidThreshold, .invalidRemindEvery, .invalidTimeout, .invalidCount,
             .invalidEmail, .unsafeForSchedule, .notAbsolute, .commanderIsSelf:
            return true
        case .fleet(.invalidName): return true
        default: return false
        }
    }
}

extension HealthError: ExitStatusReporting {
    public var exitStatus: Int32 { isUsageError ? ExitStatus.usage : ExitStatus.failure }
}

/// clmnt's documented exit statuses (docs/exit-codes.md).
public enum ExitStatus {
    public static let failure: Int32 = 1
    /// `verify` found a damaged archive; `health check` found a molt not healthy.
    public static let checkFailed: Int32 = 2
    /// The backup archived everything it could but missed files (restic's "snapshot created,
    /// but some files were missing"); `verify` of such an archive.
    public static let incomplete: Int32 = 3
    /// `fleet backup` of a base dir a killed restore left half swapped: `fleet restore --resume` first.
    public static let restorePending: Int32 = 4
    /// A bad option value (EX_USAGE, as for the parser's own errors).
    public static let usage: Int32 = 64
    /// Another backup or a restore of the same base dir holds the lock (EX_TEMPFAIL: try again later).
    public static let busy: Int32 = 75

    /// The status a command exits with for `error`: its own when it says one, else 1.
    public static func of(_ error: any Error) -> Int32 {
        (error as? any ExitStatusReporting)?.exitStatus ?? failure
    }
}

/// An error that says which exit status it means: each library error type says its own,
/// so the command line has no special cases.
public protocol ExitStatusReporting: Error {
    var exitStatus: Int32 { get }
}

extension FleetError: ExitStatusReporting {
    public var exitStatus: Int32 {
        if case .invalidName = self { return ExitStatus.usage }
        return ExitStatus.failure
    }
}

extension BackupError: ExitStatusReporting {
    public var exitStatus: Int32 {
        switch self {
        case .invalidOption: return ExitStatus.usage
        case .fleet(let error): return error.exitStatus
        case .locked(.busy): return ExitStatus.busy
        case .restorePending: return ExitStatus.restorePending
        default: return ExitStatus.failure
        }
    }
}

extension RestoreError: ExitStatusReporting {
    public var exitStatus: Int32 {
        if case .locked(.busy) = self { return ExitStatus.busy }
        return ExitStatus.failure
    }
}

extension BackupScheduleError: ExitStatusReporting {
    public var exitStatus: Int32 { isUsageError ? ExitStatus.usage : ExitStatus.failure }
}

extension AgeKeyFileError: ExitStatusReporting {
    public var exitStatus: Int32 { ExitStatus.usage }
}

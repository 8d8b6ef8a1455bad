import ArgumentParser
import ClmntCore
import ClmntObjectStore
import ClmntDashboard
import ClmntHealth
import Foundation

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: [.customShort("d"), .long],
            help: ArgumentHelp("The fleet's base dir (default: $CLMNT_BASE_DIR, else the current directory).", valueName: "dir"),
            completion: .directory)
    var baseDir: String?

    @OptionGroup var output: OutputOptions

    var quiet: Bool { output.quiet }
    var verbose: Bool { output.verbose }

    /// The base dir from the flag, the environment, or the current directory.
    var resolvedBaseDir: String {
        if let baseDir { return absolutePath(baseDir) }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CLMNT_BASE_DIR"], !fromEnvironment.isEmpty {
            return absolutePath(fromEnvironment)
        }
        return absolutePath(".")
    }
}

/// `-q` and `-v`, on every command (README "Output"): `-q` prints nothing on standard output when
/// all is well (warnings, errors and `--json` are unaffected; a listing prints bare paths), `-v` adds
/// detail (paths, how they were chosen, timings). Exit codes are the same either way.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only warnings and errors (and what --json asks for); exit codes are unchanged.")
    var quiet = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Print more detail: paths, how they were chosen, timings.")
    var verboseFlag = false

    /// The bash tool's spelling (its default): accepted, and it wins over -v.
    @Flag(name: .customLong("no-verbose"), help: .hidden)
    var noVerbose = false

    var verbose: Bool { verboseFlag && !noVerbose }

    func validate() throws {
        if quiet && verbose { throw ValidationError("give -q/--quiet or -v/--verbose, not both") }
    }

    /// A line of normal output: hidden by `-q`.
    func say(_ text: String) { if !quiet { printText(text) } }

    /// A line of `-v` detail: on standard output, or on standard error when standard output carries JSON.
    func detail(_ text: String, json: Bool = false) {
        guard verbose else { return }
        if json { printError(text) } else { printText(text) }
    }
}

extension GlobalOptions {
    func say(_ text: String) { output.say(text) }
    func detail(_ text: String, json: Bool = false) { output.detail(text, json: json) }
}

/// `--backup-dir` of the commands that read a base dir's archives (`list-backups`, `doctor`).
struct BackupDirOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The directory holding the archives (default: $CLMNT_BACKUP_DIR, else the base dir's scheduled backup dir, else ./backups).", valueName: "dir"), completion: .directory)
    var backupDir: String?

    /// The directory by the one resolution order (`resolveBackupDir`); the bash tool's `.backups`
    /// is found when nothing else names a directory (these commands only read it).
    func resolved(baseDir: String) -> BackupLocation { resolveBackupDir(backupDir, baseDir: baseDir, findBashTool: true) }
}

/// A word where a command takes no positional argument: a path is pointed at `-d`
/// (`fleet backup /srv/molts`, as the bash tool took the base dir), anything else named.
func refuseStray(_ words: [String], command: String) throws {
    guard let first = words.first else { return }
    if first.hasPrefix("/") || first.hasPrefix(".") {
        throw ValidationError("unexpected argument '\(first)': the base dir is given with -d (clmnt \(command) -d \(first))")
    }
    throw ValidationError("unexpected argument '\(first)'")
}

/// Completes molt names from the base dir the command line names (`-d DIR`,
/// `--base-dir DIR`), else $CLMNT_BASE_DIR, else the current directory; in a
/// comma-separated list (`--select a,b`), the last name.
let moltNameCompletion = CompletionKind.custom { words, _, prefix in
    var baseDir = ProcessInfo.processInfo.environment["CLMNT_BASE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "."
    for (index, word) in words.enumerated() {
        if (word == "-d" || word == "--base-dir"), index + 1 < words.count { baseDir = words[index + 1] }
        if word.hasPrefix("--base-dir=") { baseDir = String(word.dropFirst("--base-dir=".count)) }
    }
    guard let fleet = try? Fleet.discover(baseDir: absolutePath(baseDir)) else { return [] }
    let listed = prefix.split(separator: ",", omittingEmptySubsequences: false).dropLast().joined(separator: ",")
    let last = prefix.split(separator: ",", omittingEmptySubsequences: false).last.map(String.init) ?? ""
    return fleet.names.filter { $0.hasPrefix(last) }.map { listed.isEmpty ? $0 : listed + "," + $0 }
}

/// Documented exit codes (docs/exit-codes.md).
/// Runs a command body; any library error becomes one line on stderr and a
/// non-zero exit: 64 for a value the user can correct on the command line, else 1.
/// `stamp` rewrites the line (`fleet backup --timestamps` puts the time in front).
func reportingErrors(stamp: (String) -> String = { $0 }, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as ValidationError {
        throw error
    } catch {
        let hint = nothingFound(error).map { " (\(baseDirHint($0)))" } ?? ""
        printError(stamp("clmnt: " + TerminalText.line("\(error)\(hint)")))
        throw ExitCode(ExitStatus.of(error))
    }
}

/// The base dir of an error that means "nothing found there" (no molts, no such dir).
private func nothingFound(_ error: any Error) -> String? {
    let fleetError: FleetError?
    switch error {
    case let error as FleetError: fleetError = error
    case BackupError.fleet(let error): fleetError = error
    case HealthError.fleet(let error): fleetError = error
    case BackupScheduleError.fleet(let error): fleetError = error
    default: fleetError = nil
    }
    switch fleetError {
    case .noMolts(let baseDir)?, .baseDirMissing(let baseDir)?: return baseDir
    default: return nil
    }
}

/// Where clmnt looked for the fleet and how to point it elsewhere: the base dir's
/// source (-d, $CLMNT_BASE_DIR, the current directory) and the base dirs `fleet
/// schedule` recorded in the invoking user's crontab.
func baseDirHint(_ baseDir: String, arguments: [String] = CommandLine.arguments,
                 environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let flagGiven = arguments.dropFirst().contains { $0 == "-d" || $0 == "--base-dir" || $0.hasPrefix("--base-dir=") }
    var parts: [String]
    if flagGiven {
        parts = ["looked in \(baseDir), given with -d"]
    } else if let value = environment["CLMNT_BASE_DIR"], !value.isEmpty {
        parts = ["looked in \(baseDir), from $CLMNT_BASE_DIR"]
    } else {
        parts = ["looked in the current directory \(baseDir): give the base dir with -d DIR or set CLMNT_BASE_DIR"]
    }
    let scheduled = scheduledBaseDirs().filter { $0 != baseDir }
    if !scheduled.isEmpty {
        parts.append("fleet schedule backs up \(scheduled.joined(separator: ", ")): e.g. -d \(scheduled[0])")
    }
    return parts.joined(separator: "; ")
}

/// The base dirs of `fleet schedule`'s entries (`# CLMNT-FLEET-BACKUP <base-dir>`) in the invoking user's crontab.
func scheduledBaseDirs() -> [String] {
    let crontab = CronTab(user: currentUserName())
    guard crontab.isInstalled, let text = try? crontab.read() else { return [] }
    let prefix = "# \(BackupJob.marker) "
    return text.split(separator: "\n").compactMap { line in
        line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) : nil
    }
}

/// The backup dir of `baseDir`: `--backup-dir`, `$CLMNT_BACKUP_DIR`, the base dir's scheduled backup dir
/// (in the invoking user's crontab), then `fallback` (README: "One place for backups").
func resolveBackupDir(_ flag: String?, baseDir: String,
                      fallback: String = BackupLocation.fallbackDirectory, findBashTool: Bool = false) -> BackupLocation {
    BackupLocation.resolve(flag: flag, baseDir: baseDir, crontab: CronTab(user: currentUserName()), fallback: fallback,
                           findBashTool: findBashTool)
}

/// The crontab `fleet schedule` edits and reads: the invoking user's (root's, from cron as root).
func currentUserName() -> String { UserAccounts.invokingUserName() }

/// A human-readable message on standard error, control characters escaped (`TerminalText`).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((TerminalText.lines(message) + "\n").utf8))
}

extension MoltName: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// `a,b` on the command line: every name must be a valid molt name, else the
/// parser stops with the usage and exit 64.
struct MoltNameList: ExpressibleByArgument {
    var names: [MoltName]

    init?(argument: String) {
        var names: [MoltName] = []
        for part in argument.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let name = MoltName(trimmed) else { return nil }
            names.append(name)
        }
        self.names = names
    }

    /// The names given once or repeated; nil when none.
    static func names(_ lists: [MoltNameList]) -> [String]? {
        let names = lists.flatMap { $0.names.map(\.rawValue) }
        return names.isEmpty ? nil : names
    }
}

import ClmntCore
import ClmntHealth
import Foundation
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The fleet's state files, read through ClmntHealth's readers (no symlink followed,
/// size-bounded) and kept in memory as one published snapshot that requests read without waiting.
///
/// Run as a service (`buildApplication` does), the store re-reads every half `refreshInterval`:
/// it `lstat`s each molt's state files and re-reads only those that changed (and an unchanged
/// history about once a minute, a few molts per pass, for the moving 24 h window). A request never
/// does that work itself while the snapshot is younger than `refreshInterval`; when it is older
/// (the service is not running, or a refresh fell behind) the request refreshes first, re-reading
/// changed files only. So no answer is built from state older
/// than `refreshInterval`, and a huge or slow file delays the refresh, never the answers meanwhile.
/// The archive listing works the same way with `backupsInterval`.
public actor FleetStateStore: DashboardStore, Service {
    /// Checks kept per molt for the history endpoint and the sparkline.
    public static let historyDepth = 1000
    /// The backup dir's archives are listed at most this often (each needs its manifest decompressed).
    static let backupsInterval: TimeInterval = 10
    /// An unchanged history is re-read after this long, for its moving windows...
    static let historyMaxAge: TimeInterval = 60
    /// ...by the loop, at most this many molts per pass: a history near its cap (2 × 2 MiB) takes
    /// a good part of a second to parse, so re-reading the whole fleet's at once would hold every
    /// request that has to wait for a refresh.
    static let agedHistoriesPerPass = 2
    /// Root's crontab is a few lines; anything larger is not read.
    static let crontabLimit = 1024 * 1024

    let configuration: DashboardConfiguration
    /// The oldest fleet snapshot a request may be answered from.
    nonisolated let maxAge: TimeInterval
    /// What requests read: swapped in whole after each refresh, outside the actor.
    private nonisolated let published = Mutex<Published>(Published())
    private var cache: [String: CachedMolt] = [:]
    /// Each molt's `.molt-info` and `openclaw.json` parse, by their stamps, re-parsed at most once per `minimumReparseInterval`.
    nonisolated let discovery: DiscoveryCache
    /// How many times a molt's state files were read (measurements read it).
    private(set) var stateReads = 0
    private var backupStamp: [String: FileStamp] = [:]

    private struct Published: Sendable {
        var fleet: FleetSnapshot?
        var backups: BackupsSnapshot?
    }

    private struct CachedMolt {
        let stamps: [FileStamp?]
        let loadedAt: Date
        let snapshot: MoltSnapshot
    }

    public init(configuration: DashboardConfiguration) {
        self.configuration = configuration
        let interval = configuration.refreshInterval.components
        maxAge = Double(interval.seconds) + Double(interval.attoseconds) / 1e18
        discovery = DiscoveryCache(minimumInterval: configuration.limits.minimumReparseSeconds)
    }

    public nonisolated func fleet() async -> FleetSnapshot {
        if let fleet = published.withLock({ $0.fleet }), Date().timeIntervalSince(fleet.takenAt) < maxAge { return fleet }
        return await refreshFleet(unlessYoungerThan: maxAge, agedHistories: 0)
    }

    public nonisolated func backups() async -> BackupsSnapshot {
        if let backups = published.withLock({ $0.backups }), Date().timeIntervalSince(backups.takenAt) < Self.backupsInterval {
            return backups
        }
        return await refreshBackups(unlessYoungerThan: Self.backupsInterval)
    }

    /// The fleet snapshot requests are answered from now, without refreshing (tests watch the loop with it).
    nonisolated func publishedFleet() -> FleetSnapshot? { published.withLock { $0.fleet } }

    /// The refresh loop: at half the allowed ages, so requests find a young enough snapshot. Ends
    /// with the server's graceful shutdown.
    public nonisolated func run() async throws {
        // At most 10 passes a second (tests ask for 50 ms; requests then refresh in between).
        let period = Duration.milliseconds(max(100, Int(maxAge * 500)))
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = await self.refreshFleet(unlessYoungerThan: self.maxAge / 2, agedHistories: Self.agedHistoriesPerPass)
                _ = await self.refreshBackups(unlessYoungerThan: Self.backupsInterval / 2)
                try await Task.sleep(for: period)
            }
        }
    }

    /// Re-reads the state files unless the published snapshot is younger than `age` (a request
    /// and the loop, or two requests, that find it stale together read the files once).
    private func refreshFleet(unlessYoungerThan age: TimeInterval, agedHistories: Int) -> FleetSnapshot {
        let now = Date()
        if let fleet = published.withLock({ $0.fleet }), now.timeIntervalSince(fleet.takenAt) < age { return fleet }
        // Stamped with the time before any file is looked at: a change older than `takenAt` is in it.
        let snapshot = readFleet(now: now, agedHistories: agedHistories)
        published.withLock { $0.fleet = snapshot }
        return snapshot
    }

    private func refreshBackups(unlessYoungerThan age: TimeInterval) -> BackupsSnapshot {
        let now = Date()
        let current = published.withLock { $0.backups }
        if let current, now.timeIntervalSince(current.takenAt) < age { return current }
        let snapshot = listBackups(now: now, current: current)
        published.withLock { $0.backups = snapshot }
        return snapshot
    }

    /// Re-reads the molts whose state files changed, and up to `agedHistories` whose history is
    /// older than `historyMaxAge`; keeps the rest.
    func readFleet(now: Date, agedHistories: Int) -> FleetSnapshot {
        let fleet: Fleet
        do { fleet = try Fleet.discover(baseDir: configuration.baseDir, cache: discovery) } catch {
            cache = [:]
            return FleetSnapshot(baseDir: absolutePath(configuration.baseDir), molts: [], takenAt: now, problem: error.description)
        }
        var molts: [MoltSnapshot] = []
        var kept: [String: CachedMolt] = [:]
        var agedBudget = agedHistories
        for molt in fleet.molts {
            let stamps = Self.stamps(of: molt)
            if let cached = cache[molt.name], cached.snapshot.molt == molt {
                let sinceRead = now.timeIntervalSince(cached.loadedAt)
                // Changed again soon after the last read: the last read stands until the interval is over
                // (a molt rewriting its history in a loop would otherwise have root parse megabytes twice a second).
                let keep = cached.stamps == stamps
                    ? sinceRead < Self.historyMaxAge || agedBudget == 0
                    : sinceRead < configuration.limits.minimumReparseSeconds
                if keep {
                    kept[molt.name] = cached
                    molts.append(cached.snapshot)
                    continue
                }
                if cached.stamps == stamps { agedBudget -= 1 }
            }
            stateReads += 1
            let state = HealthMonitor.state(of: molt)
            let history = HealthMonitor.history(of: molt, limit: Self.historyDepth, now: now)
            let snapshot = MoltSnapshot(molt: molt, last: state.last, watch: state.watch, history: history,
                                        warnings: state.warnings + history.warnings)
            kept[molt.name] = CachedMolt(stamps: stamps, loadedAt: now, snapshot: snapshot)
            molts.append(snapshot)
        }
        cache = kept
        return FleetSnapshot(baseDir: fleet.baseDir, molts: molts, takenAt: now)
    }

    /// Identity, size and mtime of each state file, without following a symlink.
    private static func stamps(of molt: Molt) -> [FileStamp?] {
        StateDirectory.healthFileNames.map { FileStamp(path: molt.stateDir + "/" + $0) }
    }

    private func listBackups(now: Date, current: BackupsSnapshot?) -> BackupsSnapshot {
        let schedule = readSchedule()
        // The CLI's one resolution (`serve` passes the directory it resolved at start; a caller
        // that passes none gets the same order here: environment, schedule, `./backups`).
        let directory = BackupLocation.resolve(flag: configuration.backupDir, environment: configuration.environment) {
            schedule.entry.last.flatMap(BackupSchedule.backupDirArgument)
        }.directory
        // Listing decompresses every manifest: only when a file came, went or changed.
        var stamps: [String: FileStamp] = [:]
        if let names = try? directoryNames(atPath: directory) {
            for name in names { stamps[name] = FileStamp(path: directory + "/" + name) }
        }
        if let current, current.backupDir == directory, stamps == backupStamp, current.problem == nil {
            return BackupsSnapshot(backupDir: directory, listings: current.listings, problem: nil,
                                   schedule: schedule, takenAt: now)
        }
        backupStamp = stamps
        do {
            return BackupsSnapshot(backupDir: directory, listings: try BackupCatalog.list(directory: directory, now: now),
                                   problem: nil, schedule: schedule, takenAt: now)
        } catch {
            return BackupsSnapshot(backupDir: directory, listings: [], problem: error.description, schedule: schedule, takenAt: now)
        }
    }

    /// This base dir's entry in root's crontab file, read as a file (no `crontab -l`: the dashboard runs no program).
    private func readSchedule() -> ScheduleSnapshot {
        let path = configuration.crontabFile
        let file: FileDescriptor
        do { file = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) } catch {
            if error.code == ENOENT { return ScheduleSnapshot(entry: [], problem: nil) }
            return ScheduleSnapshot(entry: [], problem: "cannot read \(error)")
        }
        guard let info = try? file.status(), (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= Self.crontabLimit else {
            return ScheduleSnapshot(entry: [], problem: "cannot read \(path): not a regular file of at most 1 MiB")
        }
        let bytes: [UInt8]
        do { bytes = try file.read(upTo: Self.crontabLimit) } catch { return ScheduleSnapshot(entry: [], problem: "cannot read \(error)") }
        let text = String(decoding: bytes, as: UTF8.self)
        return ScheduleSnapshot(entry: BackupSchedule.entryLines(in: text, baseDir: absolutePath(configuration.baseDir)), problem: nil)
    }
}

import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import ClmntHealth

/// Runs the built binary as root (the test runs as root), like cron or systemd would.
func runClmnt(_ arguments: [String], timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
    let binary = try #require(clmntBinary(), "the clmnt binary is built beside the tests")
    let output = try ProgramRunner.capture(binary, arguments, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"],
                                           timeout: timeout, outputLimit: 8 << 20)
    return (output.status, output.stdout, output.stderr)
}

/// Every entry below `dir` with its type, owner, mode, size and content: what an attack could change.
func snapshot(_ dir: String) -> [String: String] {
    var result: [String: String] = [:]
    let items = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? []
    for item in items {
        var info = stat()
        guard lstat(dir + "/" + item, &info) == 0 else { continue }
        var line = "mode \(String(info.st_mode, radix: 8)) uid \(info.st_uid) size \(info.st_size) mtime \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        if (info.st_mode & S_IFMT) == S_IFREG, let data = FileManager.default.contents(atPath: dir + "/" + item) {
            line += " " + String(decoding: data.prefix(200), as: UTF8.self)
        }
        result[item] = line
    }
    return result
}

/// Root runs `check` and `health-watch` over a `.molt-state` a hostile molt user has
/// prepared: links out of the home, FIFOs, hard links, another user's files.
/// Nothing outside the home may be created or changed, and the check still reports.
@Suite(.serialized) struct StateSafetyTests {
    /// A molt owned by a real user, with no gateway (a check finds it `stopped` at once),
    /// and a root-owned directory outside the home holding a file an attacker would like changed.
    struct Scene {
        let user: TestUser
        let fleet: FleetFixture
        let outside: TemporaryDirectory
        let home: String
        var name: String { user.name }
        var state: String { home + "/.molt-state" }
        var victim: String { outside.path + "/victim" }

        init(user: TestUser) throws {
            self.user = user
            fleet = try FleetFixture.bare()
            outside = try TemporaryDirectory(prefix: "clmnt-outside")
            chmod(outside.path, 0o755)
            try "precious root data\n".write(toFile: outside.path + "/victim", atomically: false, encoding: .utf8)
            home = try fleet.addMolt(user.name, port: 19001)
            try FileManager.default.createDirectory(atPath: home + "/.molt-state", withIntermediateDirectories: true)
            for path in [home, home + "/.openclaw", home + "/.molt-info", home + "/.openclaw/openclaw.json", home + "/.molt-state"] {
                chown(path, user.uid, user.gid)
            }
            chmod(home, 0o700)
        }

        func tearDown() {
            fleet.remove()
            outside.remove()
        }
    }

    enum Plant: String, CaseIterable {
        case historyLink, danglingHistoryLink, statusLink, watchStateLink, lockLink, stateDirLink
        case historyFIFO, statusFIFO, lockFIFO, historyHardLink, foreignStatus, foreignHistory

        /// What the warning says about it.
        var reason: String {
            switch self {
            case .historyLink, .danglingHistoryLink, .statusLink, .watchStateLink, .lockLink, .stateDirLink: return "is a symbolic link"
            case .historyFIFO, .statusFIFO, .lockFIFO: return "is a FIFO"
            case .historyHardLink: return "has 2 hard links"
            case .foreignStatus, .foreignHistory: return "belongs to uid 65534"
            }
        }

        func plant(_ scene: Scene) throws {
            let state = scene.state
            switch self {
            case .historyLink: symlink(scene.victim, state + "/health-history.jsonl")
            case .danglingHistoryLink: symlink(scene.outside.path + "/created-by-root", state + "/health-history.jsonl")
            case .statusLink: symlink(scene.victim, state + "/health-status.json")
            case .watchStateLink: symlink(scene.victim, state + "/health-watch-state.json")
            case .lockLink: symlink(scene.outside.path + "/lock-created-by-root", state + "/.health.lock")
            case .stateDirLink:
                try FileManager.default.removeItem(atPath: state)
                symlink(scene.outside.path, state)
            case .historyFIFO: mkfifo(state + "/health-history.jsonl", 0o644)
            case .statusFIFO: mkfifo(state + "/health-status.json", 0o644)
            case .lockFIFO: mkfifo(state + "/.health.lock", 0o644)
            case .historyHardLink: link(scene.victim, state + "/health-history.jsonl")
            case .foreignStatus, .foreignHistory:
                let file = state + (self == .foreignStatus ? "/health-status.json" : "/health-history.jsonl")
                try "{}\n".write(toFile: file, atomically: false, encoding: .utf8)
                chown(file, 65534, 65534)
            }
            // Planted by the molt user: its own links and FIFOs (the hard link's target stays root's).
            if self != .foreignStatus && self != .foreignHistory && self != .historyHardLink {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: state)) ?? [] where self != .stateDirLink {
                    lchown(state + "/" + name, scene.user.uid, scene.user.gid)
                }
                lchown(state, scene.user.uid, scene.user.gid)
            }
        }
    }

    /// Before: root appended to `/outside/victim` through the link (or hard link), created
    /// files outside the home, or hung forever on a FIFO.
    @Test(arguments: Plant.allCases)
    func plantedFileIsRefusedAndTheCheckStillReports(_ plant: Plant) throws {
        let user = try TestUser()
        defer { user.remove() }
        let scene = try Scene(user: user)
        defer { scene.tearDown() }
        try plant.plant(scene)
        let before = snapshot(scene.outside.path)

        let check = try runClmnt(["molt", "health", "check", scene.name, "-d", scene.fleet.base], timeout: 20)
        #expect(check.status == 2, "\(check.stderr)")
        #expect(check.stdout.hasPrefix("\(scene.name): stopped"), "\(check.stdout)")
        if plant != .watchStateLink { // `check` never touches the watch state
            #expect(check.stderr.contains("refusing") && check.stderr.contains(plant.reason), "\(check.stderr)")
        }

        let watch = try runClmnt(["molt", "health-watch", scene.name, "-d", scene.fleet.base], timeout: 20)
        #expect(watch.stdout.contains("health: stopped"), "\(watch.stdout)")
        #expect((watch.stdout + watch.stderr).contains(plant.reason), "\(watch.stdout) \(watch.stderr)")

        let status = try runClmnt(["molt", "health", "status", scene.name, "-d", scene.fleet.base], timeout: 20)
        #expect(status.status != 0 || status.stdout.contains("stopped"))

        #expect(snapshot(scene.outside.path) == before, "\(plant): something outside the home changed")
        #expect(try String(contentsOfFile: scene.victim, encoding: .utf8) == "precious root data\n")
    }

    /// `health logs` printed whatever file `cron.log` linked to, as root: `/etc/shadow` for the asking.
    @Test func logThatIsALinkIsNotPrinted() throws {
        let user = try TestUser()
        defer { user.remove() }
        let scene = try Scene(user: user)
        defer { scene.tearDown() }
        symlink(scene.victim, scene.state + "/cron.log")
        let logs = try runClmnt(["molt", "health", "logs", scene.name, "-d", scene.fleet.base], timeout: 20)
        #expect(logs.status == 1)
        #expect(!logs.stdout.contains("precious"))
        #expect(logs.stderr.contains("is a symbolic link"), "\(logs.stderr)")
    }

    /// A 50 MB status file and a 50 MB history (hostile or just neglected) cost neither time nor memory.
    @Test func hugeStateFilesAreReadBounded() throws {
        let user = try TestUser()
        defer { user.remove() }
        let scene = try Scene(user: user)
        defer { scene.tearDown() }
        let line = #"{"timestamp":"2026-11-28T10:00:00Z","status":"healthy","pid":1,"port":19001,"http_status":200,"response_time_ms":1.5}"# + "\n"
        let history = Data(String(repeating: line, count: 50_000_000 / line.utf8.count).utf8)
        FileManager.default.createFile(atPath: scene.state + "/health-history.jsonl", contents: history)
        FileManager.default.createFile(atPath: scene.state + "/health-status.json", contents: Data(repeating: 0x20, count: 50_000_000))
        for file in ["/health-history.jsonl", "/health-status.json"] { chown(scene.state + file, user.uid, user.gid) }

        let binary = try #require(clmntBinary())
        for command in [["history", scene.name], ["status", scene.name], ["check", scene.name]] {
            // Work, not wall-clock time (which a loaded machine stretches): the bytes the run read
            // (`rchar` of /proc/<pid>/io, taken when it has exited but is not yet reaped). Reading a
            // 50 MB file whole would show; the bounded reads are at most 1 MiB + the newest 2 MiB.
            let counted = try ProgramRunner.capture("/usr/bin/python3", ["-c", """
                import os, subprocess, sys
                child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                err = child.stderr.read()
                os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
                rchar = [l for l in open("/proc/%d/io" % child.pid) if l.startswith("rchar:")][0].split()[1]
                child.wait()
                sys.stderr.write(err.decode(errors="replace"))
                print(rchar)
                sys.exit(child.returncode)
                """, binary, "molt", "health"] + command + ["-d", scene.fleet.base], timeout: 120, outputLimit: 8 << 20)
            let bytesRead = Int(counted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? Int.max
            #expect(bytesRead < 8 << 20, "\(command[0]) read \(bytesRead) bytes: \(counted.stderr)")
            let status = counted
            #expect(status.status != 1 || command[0] == "status", "\(command[0]): \(status.stderr)")
            if command[0] == "status" { #expect(status.stderr.contains("more than a state file holds"), "\(status.stderr)") }
            if command[0] == "history" { #expect(status.stderr.contains("beyond the history cap"), "\(status.stderr)") }
        }
        // Memory: the whole process stays far below the files' size.
        let timed = try ProgramRunner.capture("/usr/bin/time", ["-f", "%M", binary, "molt", "health", "history", scene.name,
                                                                 "-d", scene.fleet.base], timeout: 30, outputLimit: 8 << 20)
        let maxRSSKiB = Int(timed.stderr.split(separator: "\n").last ?? "") ?? Int.max
        // The debug binary alone takes ~27 MB (~30 MB with the dashboard's server linked in); 50 MB read whole would show.
        #expect(maxRSSKiB < 45_000, "max RSS \(maxRSSKiB) KiB")
    }

    /// A real unprivileged user swaps `.molt-state` and the state files for links out of
    /// the home, as fast as it can, while root runs check and health-watch again and again.
    @Test func racingUserNeverGetsRootToWriteOutside() throws {
        let user = try TestUser()
        defer { user.remove() }
        let scene = try Scene(user: user)
        defer { scene.tearDown() }
        let before = snapshot(scene.outside.path)
        let racer = scene.fleet.base + "/racer.sh"
        let outside = scene.outside.path
        try """
        cd \(scene.home) || exit 1
        end=$(( $(date +%s) + 60 ))
        while [ -e \(scene.fleet.base)/racer.sh ] && [ $(date +%s) -lt $end ]; do
          mv .molt-state .molt-real 2>/dev/null; ln -s \(outside) .molt-state 2>/dev/null
          rm -f .molt-state; mv .molt-real .molt-state 2>/dev/null
          for f in health-history.jsonl health-status.json health-watch-state.json .health.lock health-history.jsonl.1 health-history-totals.json; do
            ln -sf \(outside)/victim .molt-state/$f.new 2>/dev/null && mv -f .molt-state/$f.new .molt-state/$f 2>/dev/null
            rm -f .molt-state/$f
            ln -sf \(outside)/new-$f .molt-state/$f 2>/dev/null
          done
        done
        """.write(toFile: racer, atomically: true, encoding: .utf8)
        chmod(racer, 0o755)
        let racerPID = try spawn("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "/bin/sh", racer])
        defer {
            unlink(racer)
            kill(racerPID, SIGKILL)
            var status: Int32 = 0
            waitpid(racerPID, &status, 0)
        }
        var reported = 0, refused = 0
        for round in 0..<40 {
            let command = round % 2 == 0 ? ["molt", "health", "check", scene.name] : ["molt", "health-watch", scene.name]
            let run = try runClmnt(command + ["-d", scene.fleet.base], timeout: 20)
            if run.stdout.contains("stopped") { reported += 1 }
            if (run.stdout + run.stderr).contains("refusing") { refused += 1 }
        }
        #expect(kill(racerPID, 0) == 0, "the racer ran the whole time")
        #expect(reported == 40, "every run printed its result")
        #expect(refused > 0, "the race hit: some runs met a planted link")
        #expect(snapshot(scene.outside.path) == before, "root wrote outside the home")
    }
    /// Issue 16 §5: a `health-watch` killed between writing its temp file and the `renameat` left
    /// `.health-status.json.XXXX` in `.molt-state` for ever. The next writer removes them: only
    /// `replace`'s own names, only files it would accept as state files, only old ones.
    @Test func staleTemporaryFilesOfKilledWritersAreRemovedByTheNextWriter() throws {
        let user = try TestUser()
        defer { user.remove() }
        let scene = try Scene(user: user)
        defer { scene.tearDown() }
        let state = scene.state
        func age(_ path: String, seconds: Int) {
            var times = [timespec(tv_sec: time(nil) - seconds, tv_nsec: 0), timespec(tv_sec: time(nil) - seconds, tv_nsec: 0)]
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }
        func plant(_ name: String, owner: uid_t, seconds: Int) throws {
            try "{\"status\":\"healt".write(toFile: state + "/" + name, atomically: false, encoding: .utf8)
            chown(state + "/" + name, owner, owner == 0 ? 0 : user.gid)
            age(state + "/" + name, seconds: seconds)
        }
        let removed = [".health-status.json.1a2b3c", ".health-status.json.zz9", ".health-watch-state.json.k3x"]
        try plant(removed[0], owner: user.uid, seconds: 3600)   // killed after its fchown
        try plant(removed[1], owner: 0, seconds: 3600)          // killed before it
        try plant(removed[2], owner: user.uid, seconds: 7200)   // the watch state's
        let kept = [".health-status.json.4f5g6h", ".health-status.json.keep-me", ".health-status.json.1A2B",
                    ".health-status.json.q1w2e3", ".health-status.json.hl12", ".health-status.json.sy12", "health-status.json.abc"]
        try plant(kept[0], owner: user.uid, seconds: 5)         // a live writer's
        try plant(kept[1], owner: user.uid, seconds: 3600)      // not clmnt's temp name
        try plant(kept[2], owner: user.uid, seconds: 3600)      // upper case: not clmnt's either
        try plant(kept[3], owner: 65534, seconds: 3600)         // another user's
        age(scene.victim, seconds: 3600)
        link(scene.victim, state + "/" + kept[4])               // a hard link to root's file outside
        symlink(scene.victim, state + "/" + kept[5])            // a symlink to it
        lchown(state + "/" + kept[5], user.uid, user.gid)
        age(state + "/" + kept[5], seconds: 3600)
        try plant(kept[6], owner: user.uid, seconds: 3600)      // no leading dot
        let before = snapshot(scene.outside.path)

        let watch = try runClmnt(["molt", "health-watch", scene.name, "-d", scene.fleet.base], timeout: 20)
        #expect(watch.stdout.contains("health: stopped"), "\(watch.stdout) \(watch.stderr)")
        let left = Set((try? FileManager.default.contentsOfDirectory(atPath: state)) ?? [])
        for name in removed { #expect(!left.contains(name), "\(name) stayed") }
        for name in kept { #expect(left.contains(name), "\(name) was removed") }
        #expect(left.contains("health-status.json") && left.contains("health-watch-state.json"), "\(left)")
        #expect(snapshot(scene.outside.path) == before)
        #expect(try String(contentsOfFile: scene.victim, encoding: .utf8) == "precious root data\n")
    }
}

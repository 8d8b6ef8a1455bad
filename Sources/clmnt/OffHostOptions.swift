import ArgumentParser
import ClmntCore
import ClmntObjectStore
import Foundation

/// `--identity`: the keys that open age-encrypted archives (paths only, never keys).
struct IdentityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("An age identity file or OpenSSH ed25519 private key that opens encrypted archives (repeatable; default: $CLMNT_IDENTITY_FILE). Must be 0600 and the invoking user's.", valueName: "file"), completion: .file())
    var identity: [String] = []

    /// Loads the identities (refusing a key file anyone else could read) and hands them to every archive reader.
    func install() throws {
        let paths = AgeKeyFiles.identityPaths(flags: identity)
        guard !paths.isEmpty else { return }
        ArchiveInput.useIdentities(try AgeKeyFiles.identities(paths: paths))
    }
}

/// `--encrypt-to` and `--recipients-file`: whom a backup is encrypted to.
struct EncryptionOptions: ParsableArguments {
    @Option(name: .customLong("encrypt-to"), help: ArgumentHelp("Encrypt the archive to this age recipient (age1… or an ssh-ed25519 public key; repeatable). The archive's name ends in .age.", valueName: "recipient"))
    var encryptTo: [String] = []

    @Option(help: ArgumentHelp("Encrypt to every recipient listed in this file (age's format: one a line, # comments; repeatable).", valueName: "file"), completion: .file())
    var recipientsFile: [String] = []

    func recipients() throws -> [AgeRecipient] {
        try AgeKeyFiles.recipients(values: encryptTo, files: recipientsFile)
    }
}

/// How to reach an S3-compatible store: the AWS variables and files, and a private CA.
struct ObjectStoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Trust this PEM CA bundle for the object store's TLS (a private CA).", valueName: "file"), completion: .file())
    var caFile: String?

    /// A client for `url` (`s3://BUCKET[/PREFIX]`), configured from AWS_* and ~/.aws/credentials.
    func open(_ url: String) throws -> OffHostBackups {
        let location = try S3Location(parsing: url)
        let config = try ObjectStoreConfig.fromEnvironment(caFile: caFile)
        return OffHostBackups(client: try ObjectStoreClient(config: config), location: location)
    }
}

/// The host's name as its archives' "directory" in a bucket.
func hostDirectoryName(_ flag: String?) throws -> String {
    let host = flag ?? ProcessInfo.processInfo.hostName
    guard OffHostBackups.isValidHost(host) else { throw ValidationError("'\(host)' cannot name a host in a bucket (no '/', no control characters)") }
    return host
}

func isObjectURL(_ text: String?) -> Bool { text?.hasPrefix("s3://") == true }

/// Registers `s3://BUCKET/KEY` (or standard input for `-`) with the archive readers; returns the name to read.
func registerArchiveSource(_ name: String, store: ObjectStoreOptions) throws -> String {
    if name == "-" {
        ArchiveInput.useStandardInput()
        return name
    }
    guard isObjectURL(name) else { return absolutePath(name) }
    let location = try S3Location(parsing: name)
    guard !location.prefix.isEmpty, !location.prefix.hasSuffix("/") else {
        throw ValidationError("\(name) names no object: give s3://BUCKET/KEY (see fleet list-backups --from s3://BUCKET/PREFIX)")
    }
    let backups = try store.open("s3://\(location.bucket)")
    return backups.registerForReading(key: location.prefix)
}

import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntObjectStore

@Suite(.tags(.fast)) struct ObjectStoreConfigTests {
    /// Scheme, Host header and path of a request, as one comparable value.
    func addressParts(_ address: (scheme: String, host: String, path: String)) -> [String] {
        [address.scheme, address.host, address.path]
    }

    @Test func s3URLs() throws {
        #expect(try S3Location(parsing: "s3://backups") == S3Location(bucket: "backups", prefix: ""))
        #expect(try S3Location(parsing: "s3://backups/") == S3Location(bucket: "backups", prefix: ""))
        #expect(try S3Location(parsing: "s3://my.backups-1/fleet/nightly") == S3Location(bucket: "my.backups-1", prefix: "fleet/nightly"))
        #expect(try S3Location(parsing: "s3://b12/p/").key("host-a/x") == "p/host-a/x")
        #expect(try S3Location(parsing: "s3://b12/p").key("host-a/x") == "p/host-a/x")
        #expect(try S3Location(parsing: "s3://b12").key("x") == "x")
        #expect(S3Location(bucket: "b12", prefix: "p").description == "s3://b12/p")
    }

    @Test(arguments: [
        ("backups/x", "must start with s3://BUCKET"),
        ("https://b12/x", "must start with s3://BUCKET"),
        ("s3://", "the bucket name is missing"),
        ("s3:///x", "the bucket name is missing"),
        ("s3://Backups/x", "is not a bucket name"),
        ("s3://ab/x", "is not a bucket name"),
        ("s3://b_12/x", "is not a bucket name"),
        ("s3://-b12/x", "is not a bucket name"),
        ("s3://b12/a//b", "empty path segment"),
        ("s3://b12/a\u{1B}[2Jb", "control character"),
    ])
    func badS3URLsSayWhy(_ text: String, _ why: String) {
        do {
            _ = try S3Location(parsing: text)
            Issue.record("\(text) was accepted")
        } catch let error as ObjectStoreError {
            #expect(error.description.contains(why), "\(error)")
            #expect(!error.description.contains("\n") && !error.description.contains("\u{1B}"))
            #expect(error.description.hasPrefix("s3 parse URL: "))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func environmentKeysWin() throws {
        let config = try ObjectStoreConfig.fromEnvironment([
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_SESSION_TOKEN": "TOKEN",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-3",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        ])
        #expect(config.credentials == AWSCredentials(accessKeyID: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN"))
        #expect(config.region == "eu-west-3")
        #expect(config.addressing == .pathStyle)
        #expect(addressParts(config.address(bucket: "b12", key: "p/k")) == ["http", "127.0.0.1:9000", "/b12/p/k"])
        #expect(addressParts(config.address(bucket: "b12", key: nil)) == ["http", "127.0.0.1:9000", "/b12"])
    }

    @Test func awsDefaultsAreVirtualHosted() throws {
        let config = try ObjectStoreConfig.fromEnvironment([
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x",
        ])
        #expect(config.region == "eu-central-1")
        #expect(config.credentials.sessionToken == nil)
        #expect(addressParts(config.address(bucket: "b12", key: "p/k")) == ["https", "b12.s3.eu-central-1.amazonaws.com", "/p/k"])
        // A dotted bucket would not match *.s3.REGION.amazonaws.com's certificate.
        #expect(addressParts(config.address(bucket: "my.b12", key: "k")) == ["https", "s3.eu-central-1.amazonaws.com", "/my.b12/k"])
        let bare = try ObjectStoreConfig.fromEnvironment(["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"])
        #expect(bare.region == "us-east-1")
        let port = try ObjectStoreConfig.fromEnvironment(["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S",
                                                         "AWS_ENDPOINT_URL": "https://s3.example.net:443"])
        #expect(addressParts(port.address(bucket: "b12", key: "k")) == ["https", "s3.example.net", "/b12/k"])
    }

    @Test func sharedCredentialsFileAndProfile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.path + "/credentials"
        try """
            # written by aws configure
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = defaultsecret

            [backup]
            aws_access_key_id=BACKUPKEY
            ; a comment
            aws_secret_access_key = backup/secret+x
            aws_session_token = tok
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let byDefault = try ObjectStoreConfig.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": file])
        #expect(byDefault.credentials == AWSCredentials(accessKeyID: "DEFAULTKEY", secretAccessKey: "defaultsecret"))
        let profile = try ObjectStoreConfig.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "backup"])
        #expect(profile.credentials == AWSCredentials(accessKeyID: "BACKUPKEY", secretAccessKey: "backup/secret+x", sessionToken: "tok"))
        // ~/.aws/credentials when no override: HOME decides where ~ is.
        try FileManager.default.createDirectory(atPath: dir.path + "/home/.aws", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: file, toPath: dir.path + "/home/.aws/credentials")
        let home = try ObjectStoreConfig.fromEnvironment(["HOME": dir.path + "/home", "AWS_PROFILE": "backup"])
        #expect(home.credentials.accessKeyID == "BACKUPKEY")

        #expect(throws: ObjectStoreError.self) {
            try ObjectStoreConfig.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"])
        }
        do {
            _ = try ObjectStoreConfig.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"])
        } catch let error as ObjectStoreError {
            #expect(error.description == "s3 read credentials: \(file): no [nope] profile")
        }
    }

    @Test func missingOrHalfCredentialsAreRefused() throws {
        do {
            _ = try ObjectStoreConfig.fromEnvironment(["AWS_ACCESS_KEY_ID": "A"])
            Issue.record("a key without a secret was accepted")
        } catch let error as ObjectStoreError {
            #expect(error.description == "s3 configure: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
        do {
            _ = try ObjectStoreConfig.fromEnvironment(["AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials"])
            Issue.record("no credentials at all was accepted")
        } catch let error as ObjectStoreError {
            #expect(error.description.contains("/nonexistent/credentials: cannot read it"))
        }
    }

    @Test func badEndpointsAndCAFilesAreRefused() throws {
        let keys = ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"]
        for endpoint in ["ftp://host", "http://host/path", "localhost:9000"] {
            #expect(throws: ObjectStoreError.self, "\(endpoint)") {
                try ObjectStoreConfig.fromEnvironment(keys.merging(["AWS_ENDPOINT_URL": endpoint]) { $1 })
            }
        }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try "not a certificate".write(toFile: dir.path + "/ca.pem", atomically: true, encoding: .utf8)
        for caFile in [dir.path + "/missing.pem", dir.path + "/ca.pem"] {
            let config = try ObjectStoreConfig.fromEnvironment(keys, caFile: caFile)
            do {
                let client = try ObjectStoreClient(config: config)
                try client.syncShutdown()
                Issue.record("\(caFile) was accepted")
            } catch let error as ObjectStoreError {
                #expect(error.description.contains("CA file '\(caFile)'"))
            }
        }
    }
}

import ClmntTestSupport
import Foundation
import Testing
@testable import ClmntObjectStore

/// The signer against AWS's published vectors: the Signature Version 4 test suite
/// (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, region us-east-1, service "service",
/// 2015-08-30T12:36:00Z) and the examples of the S3 API reference, "Signature Calculations
/// for the Authorization Header" (examplebucket, 2013-05-24). Expected values are AWS's.
@Suite(.tags(.fast)) struct SigV4SignerTests {
    static let suite = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 20150830T123600Z
    static let suiteHost = "example.amazonaws.com"
    static let suiteCredential = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    static let empty = SigV4Signer.emptyPayloadHash

    static let s3 = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "s3")
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
    static let s3Host = "examplebucket.s3.amazonaws.com"

    func stamps(_ date: Date) -> [String] {
        let (amzDate, day) = SigV4Signer.timestamps(date)
        return [amzDate, day]
    }

    @Test func timestampsAreUTC() {
        #expect(stamps(Self.suiteDate) == ["20150830T123600Z", "20150830"])
        #expect(stamps(Self.s3Date) == ["20130524T000000Z", "20130524"])
        #expect(stamps(Date(timeIntervalSince1970: 0)) == ["19700101T000000Z", "19700101"])
        #expect(stamps(Date(timeIntervalSince1970: 1_709_164_799)) == ["20240228T235959Z", "20240228"])
        #expect(stamps(Date(timeIntervalSince1970: 1_709_164_800)) == ["20240229T000000Z", "20240229"])
    }

    @Test func getVanillaEveryStep() {
        let signed = Self.suite.sign(method: "GET", host: Self.suiteHost, path: "/", payloadHash: Self.empty, date: Self.suiteDate)
        #expect(signed.canonicalRequest == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
        #expect(signed.authorization == Self.suiteCredential
            + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(signed.headers.contains { $0.name == "x-amz-date" && $0.value == "20150830T123600Z" })
        #expect(signed.headers.contains { $0.name == "Authorization" && $0.value == signed.authorization })
    }

    /// The derived key of AWS's signing walk-through (IAM, 20150830).
    @Test func signingKeyIsAWSsDerivation() {
        let iam = SigV4Signer(credentials: Self.suite.credentials, region: "us-east-1", service: "iam")
        let key = iam.signingKey(day: "20150830").withUnsafeBytes { Array($0) }
        #expect(SigV4Signer.hex(key) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    struct Vector: Sendable, CustomStringConvertible {
        let name, method, path: String
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body = ""
        let signedHeaders, signature: String
        var description: String { name }
    }

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla-query-order-key-case", method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")],
               signedHeaders: "host;x-amz-date", signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "get-vanilla-query-order-encoded", method: "GET", path: "/",
               query: [("Param-3", "Value3"), ("Param", "Value2"), ("\u{1234}", "Value1")],
               signedHeaders: "host;x-amz-date", signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"),
        Vector(name: "get-utf8", method: "GET", path: "/\u{1234}",
               signedHeaders: "host;x-amz-date", signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        Vector(name: "get-space-unnormalized", method: "GET", path: "/example space/",
               signedHeaders: "host;x-amz-date", signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
        Vector(name: "post-vanilla", method: "POST", path: "/",
               signedHeaders: "host;x-amz-date", signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "post-x-www-form-urlencoded", method: "POST", path: "/",
               headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
               signedHeaders: "content-type;host;x-amz-date", signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        Vector(name: "get-header-value-trim", method: "GET", path: "/",
               headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
               signedHeaders: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ]

    @Test(arguments: vectors)
    func testSuiteVector(_ vector: Vector) {
        let signed = Self.suite.sign(method: vector.method, host: Self.suiteHost, path: vector.path, query: vector.query,
                                     headers: vector.headers, payloadHash: SigV4Signer.sha256Hex(Array(vector.body.utf8)),
                                     date: Self.suiteDate)
        #expect(signed.authorization == Self.suiteCredential
            + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)", "\(vector.name)")
    }

    /// post-sts-header-before: temporary credentials sign and send x-amz-security-token.
    @Test func sessionTokenIsSignedAndSent() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        var credentials = Self.suite.credentials
        credentials.sessionToken = token
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "service")
        let signed = signer.sign(method: "POST", host: Self.suiteHost, path: "/", payloadHash: Self.empty, date: Self.suiteDate)
        #expect(signed.authorization == Self.suiteCredential
            + "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")
        #expect(signed.headers.contains { $0.name == "x-amz-security-token" && $0.value == token })
    }

    /// S3 API reference, Example: GET Object (the first ten bytes of test.txt).
    @Test func s3GetObjectWithRange() {
        let signed = Self.s3.sign(method: "GET", host: Self.s3Host, path: "/test.txt",
                                  headers: [("Range", "bytes=0-9"), ("x-amz-content-sha256", Self.empty)],
                                  payloadHash: Self.empty, date: Self.s3Date)
        #expect(signed.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(SigV4Signer.sha256Hex(Array(signed.canonicalRequest.utf8)) == "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// S3 API reference, Example: PUT Object (a key with `$`, a signed payload, a Date header).
    @Test func s3PutObjectSignedPayload() {
        let payload = SigV4Signer.sha256Hex(Array("Welcome to Amazon S3.".utf8))
        #expect(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signed = Self.s3.sign(method: "PUT", host: Self.s3Host, path: "/test$file.text",
                                  headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                                            ("x-amz-content-sha256", payload)],
                                  payloadHash: payload, date: Self.s3Date)
        #expect(signed.canonicalRequest.split(separator: "\n").dropFirst().first == "/test%24file.text")
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    /// S3 API reference, Example: GET Bucket Lifecycle (a subresource without a value) and
    /// GET Bucket (list objects, query out of order).
    @Test func s3QueryExamples() {
        let headers = [("x-amz-content-sha256", Self.empty)]
        let lifecycle = Self.s3.sign(method: "GET", host: Self.s3Host, path: "/", query: [("lifecycle", "")],
                                     headers: headers, payloadHash: Self.empty, date: Self.s3Date)
        #expect(lifecycle.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        let list = Self.s3.sign(method: "GET", host: Self.s3Host, path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                                headers: headers, payloadHash: Self.empty, date: Self.s3Date)
        #expect(list.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "max-keys=2&prefix=J")
        #expect(list.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func unsignedPayloadIsTheLastLineOfTheCanonicalRequest() {
        let signed = Self.s3.sign(method: "PUT", host: Self.s3Host, path: "/k",
                                  headers: [("x-amz-content-sha256", SigV4Signer.unsignedPayload)],
                                  payloadHash: SigV4Signer.unsignedPayload, date: Self.s3Date)
        #expect(signed.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        let hashed = Self.s3.sign(method: "PUT", host: Self.s3Host, path: "/k",
                                  headers: [("x-amz-content-sha256", Self.empty)], payloadHash: Self.empty, date: Self.s3Date)
        #expect(hashed.signature != signed.signature)
    }

    /// AWS's URI encoding: unreserved characters stay, every other UTF-8 byte is %XX, and
    /// `/` is kept only in a path; a value is encoded once, never twice.
    @Test func uriEncoding() {
        #expect(SigV4Signer.uriEncode("a b/c~d+e$é=&*", keepSlash: true) == "a%20b/c~d%2Be%24%C3%A9%3D%26%2A")
        #expect(SigV4Signer.uriEncode("a/b", keepSlash: false) == "a%2Fb")
        #expect(SigV4Signer.uriEncode("-._~AZaz09", keepSlash: false) == "-._~AZaz09")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1"), ("flag", "")]) == "a=1&a=x%20y&b=2&flag=")
        #expect(SigV4Signer.canonicalPath("backups/host-a/fleet 1.tar.zst") == "/backups/host-a/fleet%201.tar.zst")
    }
}

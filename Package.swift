// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "clmnt",
    products: [
        .executable(name: "clmnt", targets: ["clmnt"]),
        .library(name: "ClmntCore", targets: ["ClmntCore"]),
        .library(name: "ClmntHealth", targets: ["ClmntHealth"]),
        .library(name: "ClmntDashboard", targets: ["ClmntDashboard"]),
        .library(name: "ClmntObjectStore", targets: ["ClmntObjectStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The dashboard's HTTP server. swift-configuration support is left out: clmnt takes its settings from flags.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // age encryption (X25519, HKDF, ChaCha20-Poly1305, HMAC) and SigV4 signing; already in the graph through Hummingbird.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        // Off-host copies on S3-compatible storage: no S3 SDK is available offline, so a small client
        // (ClmntObjectStore) on async-http-client for HTTP and swift-crypto for SigV4.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Already in the graph (async-http-client, Hummingbird); named for NIOFoundationCompat (ByteBuffer as DataProtocol).
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        // C system libraries: only ClmntCore imports them.
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev", "libdeflate-dev", "libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Linux calls glibc hides behind _GNU_SOURCE (renameat2, unshare, O_NOATIME, per-thread credentials).
        .target(name: "CLinux", cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "ClmntCore", dependencies: [
            "CArchive", "CSQLite", "CCrypto", "CLinux",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "ClmntHealth", dependencies: ["ClmntCore"]),
        .target(name: "ClmntDashboard", dependencies: [
            "ClmntCore", "ClmntHealth",
            .product(name: "Hummingbird", package: "hummingbird"),
            // Its HTTP/1 idle timeout and connection cap.
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "ClmntObjectStore", dependencies: [
            "ClmntCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        .executableTarget(name: "clmnt", dependencies: [
            "ClmntCore", "ClmntHealth", "ClmntDashboard", "ClmntObjectStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "ClmntCoreTests", dependencies: ["ClmntCore", "ClmntTestSupport"]),
        .target(name: "ClmntTestSupport", dependencies: ["ClmntCore"], path: "Tests/Support"),
        .testTarget(name: "ClmntHealthTests", dependencies: ["ClmntHealth", "ClmntTestSupport"]),
        .testTarget(name: "ClmntDashboardTests", dependencies: [
            "ClmntDashboard", "ClmntTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "ClmntObjectStoreTests", dependencies: [
            "ClmntObjectStore", "ClmntTestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

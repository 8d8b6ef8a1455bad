import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who holds the other end of a TCP connection on loopback, read from
/// `/proc/net/tcp` and `/proc/net/tcp6`.
///
/// Why the `uid` column and not the process holding the socket inode: the uid is
/// the socket's owner, set by the kernel when the socket is created (the creator's
/// filesystem uid) and inherited by every connection it accepts; a user cannot
/// change it afterwards. A socket held by another user's process got there only
/// because its creator handed it over, which the creator could do with the secret
/// itself. And the connection we are about to write on is, until its listener
/// accepts it, held by no process at all (its inode is 0), while its uid is
/// already there. Checking *our* connection, after connecting and before sending,
/// also leaves no gap between the check and the send in which the listener could
/// change hands.
public enum LoopbackSocketOwner {
    /// One row of `/proc/net/tcp{,6}`.
    public struct Entry: Sendable, Equatable {
        /// 4 bytes, or 16 for IPv6, in network order.
        public let localAddress: [UInt8]
        public let localPort: Int
        public let remoteAddress: [UInt8]
        public let remotePort: Int
        /// The kernel's TCP state: 0x01 established, 0x03 SYN_RECV, 0x0A listen.
        public let state: Int
        public let uid: uid_t

        static let established = 0x01
        static let synReceived = 0x03
        static let listen = 0x0A
    }

    /// The uid owning the server side of the connection from 127.0.0.1:`clientPort`
    /// to 127.0.0.1:`serverPort`; nil when no such row is (yet) in the tables.
    public static func serverSide(serverPort: Int, clientPort: Int, procNet: String = "/proc/net") -> uid_t? {
        entries(procNet: procNet).first {
            $0.localPort == serverPort && $0.remotePort == clientPort && isLoopbackV4($0.remoteAddress)
                && ($0.state == Entry.established || $0.state == Entry.synReceived)
        }?.uid
    }

    /// The owners of the sockets listening where a connection to 127.0.0.1:`port` can land
    /// (127.0.0.1, 0.0.0.0, `::`, or their IPv4-mapped forms).
    public static func listeners(port: Int, procNet: String = "/proc/net") -> [uid_t] {
        entries(procNet: procNet).filter {
            $0.state == Entry.listen && $0.localPort == port
                && (isLoopbackV4($0.localAddress) || $0.localAddress.allSatisfy { $0 == 0 } || isMappedAny($0.localAddress))
        }.map(\.uid)
    }

    /// Every row of both tables (a missing table, as without IPv6, has none).
    public static func entries(procNet: String = "/proc/net") -> [Entry] {
        ["tcp", "tcp6"].flatMap { name -> [Entry] in
            // Read to the end with read(2): procfs reports size 0 and hands out a page per call
            // (FileManager stops early). The kernel's tables, bounded by the host's connections.
            guard let data = try? readWholeFile(procNet + "/" + name) else { return [] }
            return String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst().compactMap(parse)
        }
    }

    /// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`
    static func parse<S: StringProtocol>(_ line: S) -> Entry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 8,
              let local = endpoint(fields[1]), let remote = endpoint(fields[2]),
              let state = Int(fields[3], radix: 16), let uid = uid_t(fields[7]) else { return nil }
        return Entry(localAddress: local.address, localPort: local.port, remoteAddress: remote.address,
                     remotePort: remote.port, state: state, uid: uid)
    }

    /// `0100007F:1F90`: the address as 32-bit words printed in host order, the port in hex.
    private static func endpoint<S: StringProtocol>(_ text: S) -> (address: [UInt8], port: Int)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16), parts[0].count == 8 || parts[0].count == 32 else { return nil }
        var address: [UInt8] = []
        var index = parts[0].startIndex
        while index < parts[0].endIndex {
            let next = parts[0].index(index, offsetBy: 8)
            guard let word = UInt32(parts[0][index..<next], radix: 16) else { return nil }
            withUnsafeBytes(of: word) { address.append(contentsOf: $0) } // host order: the kernel printed the in-memory word
            index = next
        }
        return (address, port)
    }

    private static let mappedPrefix: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]

    static func isLoopbackV4(_ address: [UInt8]) -> Bool {
        if address == [127, 0, 0, 1] { return true }
        return address.count == 16 && Array(address.prefix(12)) == mappedPrefix && Array(address.suffix(4)) == [127, 0, 0, 1]
    }

    private static func isMappedAny(_ address: [UInt8]) -> Bool {
        address.count == 16 && Array(address.prefix(12)) == mappedPrefix && address.suffix(4).allSatisfy { $0 == 0 }
    }
}

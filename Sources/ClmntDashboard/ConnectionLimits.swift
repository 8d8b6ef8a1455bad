import Foundation
import Hummingbird

/// What any local user can make the server hold (docs/api.md, "Limits"). Every molt is a local
/// user, so these are sized for a few admins' browsers, not for the world.
public struct DashboardLimits: Sendable, Equatable {
    /// A connection that has sent no request, or none since its last answer, is closed after this.
    public var idleTimeout: Duration
    /// Open connections at most; beyond, new ones wait in the kernel's backlog until one closes
    /// (the server does not accept them, so it cannot run out of descriptors and spin).
    public var maxConnections: Int
    /// `/api/events` streams at most, overall and per client address; beyond, 503.
    public var maxEventStreams: Int
    public var maxEventStreamsPerAddress: Int
    /// A molt's files (`.molt-info`, `openclaw.json`, its state files) are parsed again at most
    /// this often while they keep changing; a change after a quiet spell is read at once.
    public var minimumReparseInterval: Duration

    public static let `default` = DashboardLimits(idleTimeout: .seconds(15), maxConnections: 4096,
                                                   maxEventStreams: 2048, maxEventStreamsPerAddress: 64,
                                                   minimumReparseInterval: .seconds(5))

    var idleTimeoutNanoseconds: Int64 {
        let parts = idleTimeout.components
        return parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
    }

    var minimumReparseSeconds: Double {
        let parts = minimumReparseInterval.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// The unit's `LimitNOFILE=`: every connection a descriptor, plus the state files, archives and the event loop's own.
    public var descriptorLimit: Int { maxConnections * 2 }

    public init(idleTimeout: Duration, maxConnections: Int, maxEventStreams: Int, maxEventStreamsPerAddress: Int,
                minimumReparseInterval: Duration) {
        self.minimumReparseInterval = minimumReparseInterval
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.maxEventStreams = maxEventStreams
        self.maxEventStreamsPerAddress = maxEventStreamsPerAddress
    }
}

/// The request context of every dashboard route: Hummingbird's basic one plus the client's
/// address, which the event-stream cap counts by.
public struct DashboardContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address (nil on a Unix socket or in the router test client).
    public let clientAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// Counts the open event streams, overall and per client address.
final class EventStreamGate: @unchecked Sendable {  // state behind `lock`
    private let lock = NSLock()
    private var total = 0
    private var byAddress: [String: Int] = [:]
    let limits: DashboardLimits

    init(limits: DashboardLimits) { self.limits = limits }

    /// A slot for one stream, released when the slot is gone (the stream ended); nil when full.
    func enter(_ address: String?) throws(DashboardError) -> Slot {
        let key = address ?? "-"
        lock.lock()
        defer { lock.unlock() }
        guard total < limits.maxEventStreams else { throw .tooManyStreams("\(limits.maxEventStreams) event streams are open") }
        guard byAddress[key, default: 0] < limits.maxEventStreamsPerAddress else {
            throw .tooManyStreams("\(limits.maxEventStreamsPerAddress) event streams are open from \(key)")
        }
        total += 1
        byAddress[key, default: 0] += 1
        return Slot(gate: self, key: key)
    }

    var openStreams: Int {
        lock.lock()
        defer { lock.unlock() }
        return total
    }

    fileprivate func leave(_ key: String) {
        lock.lock()
        defer { lock.unlock() }
        total -= 1
        byAddress[key, default: 1] -= 1
        if byAddress[key] == 0 { byAddress[key] = nil }
    }

    /// Held by the stream's iterator: the count drops when the response body lets go of it.
    final class Slot: Sendable {
        private let gate: EventStreamGate
        private let key: String

        fileprivate init(gate: EventStreamGate, key: String) {
            self.gate = gate
            self.key = key
        }

        deinit { gate.leave(key) }
    }
}

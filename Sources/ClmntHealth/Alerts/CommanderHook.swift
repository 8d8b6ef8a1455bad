import ClmntCore
import Foundation

/// Where a commander molt takes webhook alerts: `POST 127.0.0.1:<port><hooks.path>/agent`.
public struct CommanderHook: Sendable, Equatable {
    public let molt: String
    public let port: Int
    /// `hooks.path`, default `/hooks`, with a leading and no trailing `/`.
    public let basePath: String
    public let token: String

    public var agentPath: String { basePath + "/agent" }

    /// Reads the commander's OpenClaw config. A commander whose hooks are off or
    /// have no token is reported as such: nothing is guessed.
    public static func resolve(_ commander: Molt) -> Result<CommanderHook, CommanderHookProblem> {
        let path = commander.openClawConfigPath
        let data: Data?
        // Through descriptors: the commander's user must not make root read (and send) another molt's token.
        do { data = try readInHome(commander.home, ".openclaw/openclaw.json") } catch {
            if case .cannotRead(_, let reason) = error { return .failure(.unreadable(path: path, reason: reason)) }
            return .failure(.unreadable(path: path, reason: error.description))
        }
        guard let data else { return .failure(.noConfig(path: path)) }
        guard let config = try? JSONValue.parse(json5: data) else { return .failure(.unparsable(path: path)) }
        guard config[path: "hooks.enabled"]?.boolValue == true else {
            return .failure(.hooksDisabled(molt: commander.name, path: path))
        }
        guard let token = config[path: "hooks.token"]?.stringValue?.trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            return .failure(.noToken(molt: commander.name, path: path))
        }
        guard let port = commander.port else { return .failure(.noPort(molt: commander.name)) }
        var base = config[path: "hooks.path"]?.stringValue?.trimmingCharacters(in: .whitespaces) ?? "/hooks"
        if base.isEmpty { base = "/hooks" }
        if !base.hasPrefix("/") { base = "/" + base }
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        if base == "/" { base = "" }
        return .success(CommanderHook(molt: commander.name, port: port, basePath: base, token: token))
    }
}

/// Why a commander cannot take webhook alerts.
public enum CommanderHookProblem: Error, Equatable, CustomStringConvertible {
    case noConfig(path: String)
    case unreadable(path: String, reason: String)
    case unparsable(path: String)
    case hooksDisabled(molt: String, path: String)
    case noToken(molt: String, path: String)
    case noPort(molt: String)

    public var description: String {
        switch self {
        case .noConfig(let path): return "commander config \(path) does not exist"
        case .unreadable(let path, let reason): return "cannot read commander config \(path): \(reason)"
        case .unparsable(let path): return "commander config \(path) is not valid JSON5"
        case .hooksDisabled(let molt, let path): return "commander \(molt) has hooks disabled (set hooks.enabled: true in \(path))"
        case .noToken(let molt, let path): return "commander \(molt) has no hooks token (set hooks.token in \(path))"
        case .noPort(let molt): return "commander \(molt) has no port (MOLT_PORT or gateway.port)"
        }
    }
}

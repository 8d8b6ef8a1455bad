/// A molt's name is also its Linux user name, its home directory's name and a
/// word in crontab lines, so it must be safe in all of them. A value of this
/// type is a valid name (the command line parses names into it).
public struct MoltName: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// nil unless `name` is valid.
    public init?(_ name: String) {
        guard MoltName.isValid(name) else { return nil }
        rawValue = name
    }

    public var description: String { rawValue }

    /// Debian's useradd default rule, stricter: lower-case letter first, then
    /// lower-case letters, digits, `-` or `_`, at most 32 characters.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 32 else { return false }
        guard ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_"
        }
    }

    /// Throws `FleetError.invalidName` unless `name` is a valid molt name.
    public static func validate(_ name: String) throws(FleetError) {
        guard isValid(name) else { throw .invalidName(name) }
    }
}

import CArchive
import Foundation

/// The kind of an archive entry.
public enum EntryKind: Sendable, Equatable {
    case regular, directory, symlink, hardlink, other(mode: UInt32)
}

/// What an archive entry's header says, in Swift terms.
/// Paths and link targets are bytes, exactly as the tar header holds them.
public struct EntryMetadata: Sendable, Equatable {
    public var path: PathBytes
    public var kind: EntryKind
    /// Apparent size of a regular file (0 for hardlink entries).
    public var size: Int64
    public var mode: UInt32
    public var uid: Int64
    public var gid: Int64
    public var userName: String?
    public var groupName: String?
    public var mtime: Int64
    public var mtimeNanoseconds: Int
    public var symlinkTarget: PathBytes?
    public var hardlinkTarget: PathBytes?
    public var xattrNames: [String]
    public var isSparse: Bool
}

/// Owns one `archive_entry`; freed on deinit.
final class ArchiveEntry {
    let pointer: OpaquePointer

    init() {
        guard let pointer = archive_entry_new() else { fatalError("archive_entry_new failed") }
        self.pointer = pointer
    }

    deinit { archive_entry_free(pointer) }

    /// The path as bytes: libarchive's "multibyte" form, which clmnt never
    /// converts (the pax writer stores a name that is not UTF-8 under
    /// `hdrcharset=BINARY`, as bsdtar does; the reader hands those bytes back).
    var pathname: PathBytes {
        get { archive_entry_pathname(pointer).map { PathBytes(cString: $0) } ?? PathBytes([]) }
        set { newValue.withCString { archive_entry_copy_pathname(pointer, $0) } }
    }

    var symlink: PathBytes? {
        get { archive_entry_symlink(pointer).map { PathBytes(cString: $0) } }
        set {
            if let newValue { newValue.withCString { archive_entry_copy_symlink(pointer, $0) } }
            else { archive_entry_copy_symlink(pointer, nil) }
        }
    }

    var hardlink: PathBytes? {
        get { archive_entry_hardlink(pointer).map { PathBytes(cString: $0) } }
        set {
            if let newValue { newValue.withCString { archive_entry_copy_hardlink(pointer, $0) } }
            else { archive_entry_copy_hardlink(pointer, nil) }
        }
    }

    /// Whether the path or a link target is not UTF-8 (so the pax writer stores it as raw bytes).
    var hasBinaryNames: Bool {
        pathname.string == nil || symlink.map { $0.string == nil } == true || hardlink.map { $0.string == nil } == true
    }

    var size: Int64 {
        get { archive_entry_size(pointer) }
        set { archive_entry_set_size(pointer, newValue) }
    }

    /// Marks this entry a hardlink to `target` (an archive path): no data follows.
    func setHardlink(_ target: PathBytes) {
        hardlink = target
        archive_entry_set_size(pointer, 0)
    }

    /// Data regions of a sparse file as (offset, length); empty when not sparse.
    var sparseRegions: [(offset: Int64, length: Int64)] {
        var regions: [(Int64, Int64)] = []
        let count = archive_entry_sparse_reset(pointer)
        guard count > 0 else { return [] }
        var offset: Int64 = 0, length: Int64 = 0
        while archive_entry_sparse_next(pointer, &offset, &length) == ARCHIVE_OK {
            regions.append((offset, length))
        }
        return regions
    }

    /// Turns a synthesized entry into a directory.
    func setDirectory(mode: UInt32) {
        archive_entry_set_filetype(pointer, FileType.directory)
        archive_entry_set_perm(pointer, mode)
        archive_entry_set_size(pointer, 0)
    }

    /// Drops any sparse map (used when the data we write is not the file's own).
    func clearSparse() { archive_entry_sparse_clear(pointer) }

    /// Fills a synthesized entry for a regular file of `size` bytes.
    static func synthesizedFile(path: String, size: Int64, mode: UInt32 = 0o600, mtime: Int64) -> ArchiveEntry {
        let entry = ArchiveEntry()
        archive_entry_copy_pathname(entry.pointer, path)
        archive_entry_set_filetype(entry.pointer, FileType.regular)
        archive_entry_set_perm(entry.pointer, mode)
        archive_entry_set_size(entry.pointer, size)
        archive_entry_set_mtime(entry.pointer, Int(mtime), 0)
        archive_entry_set_uid(entry.pointer, 0)
        archive_entry_set_gid(entry.pointer, 0)
        archive_entry_copy_uname(entry.pointer, "root")
        archive_entry_copy_gname(entry.pointer, "root")
        return entry
    }

    var metadata: EntryMetadata {
        let fileType = archive_entry_filetype(pointer)
        let hardlink = self.hardlink
        let kind: EntryKind
        if hardlink != nil { kind = .hardlink }
        else if fileType == FileType.regular { kind = .regular }
        else if fileType == FileType.directory { kind = .directory }
        else if fileType == FileType.symlink { kind = .symlink }
        else { kind = .other(mode: fileType) }
        var names: [String] = []
        if archive_entry_xattr_reset(pointer) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var length = 0
            while archive_entry_xattr_next(pointer, &name, &value, &length) == ARCHIVE_OK {
                if let name { names.append(String(cString: name)) }
            }
        }
        return EntryMetadata(
            path: pathname, kind: kind, size: archive_entry_size(pointer),
            mode: UInt32(archive_entry_perm(pointer)),
            uid: archive_entry_uid(pointer), gid: archive_entry_gid(pointer),
            userName: archive_entry_uname(pointer).map { String(cString: $0) },
            groupName: archive_entry_gname(pointer).map { String(cString: $0) },
            mtime: Int64(archive_entry_mtime(pointer)), mtimeNanoseconds: archive_entry_mtime_nsec(pointer),
            symlinkTarget: symlink,
            hardlinkTarget: hardlink, xattrNames: names,
            isSparse: archive_entry_sparse_count(pointer) > 0)
    }
}

/// The file-type bits of a mode (libarchive's AE_IF* are casts Swift cannot import).
enum FileType {
    static let mask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let socket: UInt32 = 0o140000
}

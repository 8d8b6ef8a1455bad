import Foundation

/// The open directories of a depth-first walk, innermost last (index = depth):
/// each is closed when popped, and all of them when the stack goes, on any path.
/// (`FileDescriptor` is not copyable, so an array cannot hold it: this owner does.)
final class DescriptorStack {
    private var descriptors: [Int32] = []

    init() {}

    deinit { descriptors.forEach { _ = close($0) } }

    var count: Int { descriptors.count }

    subscript(depth: Int) -> Int32 { descriptors[depth] }

    func push(_ directory: consuming FileDescriptor) { descriptors.append(directory.release()) }

    func pop() { _ = close(descriptors.removeLast()) }
}

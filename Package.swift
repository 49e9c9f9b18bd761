// swift-tools-version: 6.1
import PackageDescription

// FlowSyntax, FlowStore and FlowRuntime depend on nothing outside the toolchain so that
// embedding the interpreter stays light; FlowSQLite links the system SQLite,
// the CLI swift-argument-parser.
let package = Package(
    name: "Flow",
    products: [
        .executable(name: "flow", targets: ["FlowCLI"]),
        .library(name: "FlowSyntax", targets: ["FlowSyntax"]),
        .library(name: "FlowRuntime", targets: ["FlowRuntime"]),
        .library(name: "FlowStdlib", targets: ["FlowStdlib"]),
        .library(name: "FlowStore", targets: ["FlowStore"]),
        .library(name: "FlowSQLite", targets: ["FlowSQLite"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "FlowSyntax"),
        // The store protocol and the in-memory store: no dependencies, so the runtime can
        // record runs without pulling in a database.
        .target(name: "FlowStore"),
        // The system SQLite (libsqlite3-dev), and the store on it for hosts that want
        // durability on disk.
        .systemLibrary(name: "CSQLite"),
        .target(name: "FlowSQLite", dependencies: ["FlowStore", "CSQLite"]),
        // Async functions run on their caller's executor (SE-0461): the interpreter's
        // async path calls evalAsync at every node, and hopping executors each time cost
        // most of a node's time.
        // Switching the calling thread's stack (makecontext, which Swift cannot call): a header.
        .systemLibrary(name: "CStack"),
        .target(name: "FlowRuntime", dependencies: ["FlowSyntax", "FlowStore", "CStack"],
                swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]),
        .target(name: "FlowStdlib", dependencies: ["FlowSyntax", "FlowRuntime"]),
        // GNU readline, linked from the system (libreadline-dev).
        .systemLibrary(name: "CReadline"),
        .target(name: "FlowREPL", dependencies: ["FlowSyntax", "FlowRuntime", "FlowStore", "CReadline"]),
        .executableTarget(
            name: "FlowCLI",
            dependencies: [
                "FlowSyntax", "FlowRuntime", "FlowStdlib", "FlowStore", "FlowSQLite", "FlowREPL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FlowSyntaxTests", dependencies: ["FlowSyntax"]),
        .testTarget(name: "FlowRuntimeTests", dependencies: ["FlowSyntax", "FlowRuntime", "FlowStdlib", "FlowStore"]),
        .testTarget(name: "FlowStoreTests", dependencies: ["FlowStore", "FlowSQLite"]),
        .testTarget(name: "FlowCLITests", dependencies: ["FlowCLI"]),
        .testTarget(name: "GoldenTests", dependencies: ["FlowSyntax", "FlowRuntime", "FlowStdlib"],
                    exclude: ["Scripts"]),
    ]
)

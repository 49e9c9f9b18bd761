// swift-tools-version: 6.1
import PackageDescription

// FlowSyntax and FlowRuntime depend on nothing outside the toolchain so that embedding
// the interpreter stays light; only the CLI pulls in swift-argument-parser.
let package = Package(
    name: "Flow",
    products: [
        .executable(name: "flow", targets: ["FlowCLI"]),
        .library(name: "FlowSyntax", targets: ["FlowSyntax"]),
        .library(name: "FlowRuntime", targets: ["FlowRuntime"]),
        .library(name: "FlowStdlib", targets: ["FlowStdlib"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "FlowSyntax"),
        // Async functions run on their caller's executor (SE-0461): the interpreter's
        // async path calls evalAsync at every node, and hopping executors each time cost
        // most of a node's time.
        .target(name: "FlowRuntime", dependencies: ["FlowSyntax"],
                swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]),
        .target(name: "FlowStdlib", dependencies: ["FlowSyntax", "FlowRuntime"]),
        .executableTarget(
            name: "FlowCLI",
            dependencies: [
                "FlowSyntax", "FlowRuntime", "FlowStdlib",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FlowSyntaxTests", dependencies: ["FlowSyntax"]),
        .testTarget(name: "FlowRuntimeTests", dependencies: ["FlowSyntax", "FlowRuntime", "FlowStdlib"]),
        .testTarget(name: "FlowCLITests", dependencies: ["FlowCLI"]),
        .testTarget(name: "GoldenTests", dependencies: ["FlowSyntax", "FlowRuntime", "FlowStdlib"],
                    exclude: ["Scripts"]),
    ]
)

// placeholder, filled in below
struct ClusterBench {
    let options: HostOptions
    func run() async throws {}
}

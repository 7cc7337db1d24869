//! Matmul tiles: how many rows and columns of C a workgroup and each of its threads compute,
//! how they are fed (`shaders/matmul_staged.wgsl` on GPUs, `shaders/matmul_direct.wgsl` on
//! software adapters), which one a product gets ([`choose_tile`]), and the direct kernel's
//! source for a block ([`direct_source`]).

const DIRECT_TEMPLATE: &str = include_str!("../../../shaders/matmul_direct.wgsl");

/// How a matmul kernel feeds its threads' blocks of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// K in slices staged in workgroup memory, two barriers per slice
    /// (`shaders/matmul_staged.wgsl`): GPUs, where it saves global loads.
    Staged,
    /// Straight from A and B, no workgroup memory or barriers (`shaders/matmul_direct.wgsl`):
    /// software adapters, where workgroup memory is ordinary memory and barriers are coroutine
    /// switches.
    Direct,
}

/// A matmul tile: rows × columns of C per workgroup, the K slice staged per pass (staged
/// kernels), how the blocks are fed, and each thread's block of C, rows × columns (4×4 when
/// staged; multiples of 4 when direct): a workgroup has (m/block_m)·(n/block_n) threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub feed: Feed,
    pub block_m: u32,
    pub block_n: u32,
}

/// The default tile on GPUs: 256 threads, the most reuse per staged value.
pub const LARGE_TILE: Tile = Tile {
    m: 64,
    n: 64,
    k: 16,
    feed: Feed::Staged,
    block_m: 4,
    block_n: 4,
};
/// For products too small to give the large tile enough workgroups (at batch 64, `x·W₁` is a
/// single 64×64 tile): four times the workgroups, and half the barriers along K. It helps
/// small batches and hurts large ones, hence the choice per product ([`choose_tile`];
/// BENCHMARKS.md, "Kernel parameters").
pub const SMALL_TILE: Tile = Tile {
    m: 32,
    n: 32,
    k: 32,
    feed: Feed::Staged,
    block_m: 4,
    block_n: 4,
};
/// The direct tiles (software adapters) are 32×32: at batch 64 the first layer's product still
/// has four workgroups for the adapter's threads, and a narrow output layer wastes less of a
/// tile than with a wider one (BENCHMARKS.md, "Kernel parameters"). This one, 4×4 per thread
/// and 64 threads, is for adapters whose SIMD groups are wider than the wider blocks'
/// workgroups.
pub const DIRECT_TILE: Tile = Tile {
    m: 32,
    n: 32,
    k: 0,
    feed: Feed::Direct,
    block_m: 4,
    block_n: 4,
};
/// The direct tile with a 16×8 block per thread (8 threads): 24 loads per 128 multiply-adds
/// against 8 per 16.
pub const DIRECT_WIDE_TILE: Tile = Tile {
    block_m: 16,
    block_n: 8,
    ..DIRECT_TILE
};
/// The direct tile with a 16×16 block per thread (4 threads): 32 loads per 256 multiply-adds,
/// for the products with a long side.
pub const DIRECT_WIDEST_TILE: Tile = Tile {
    block_m: 16,
    block_n: 16,
    ..DIRECT_TILE
};
/// Every tile a kernel is built for.
pub const TILES: [Tile; 5] = [
    LARGE_TILE,
    SMALL_TILE,
    DIRECT_TILE,
    DIRECT_WIDE_TILE,
    DIRECT_WIDEST_TILE,
];
/// Below this many large-tile workgroups, a product uses the small tile.
pub const SMALL_TILE_BELOW: u32 = 8;

/// From this K or this many rows of C on, a product is long: software adapters with SIMD groups
/// of at most 4 lanes take the widest direct tile for it.
pub const LONG_FROM: u32 = 256;

/// The adapter as the tile rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileTarget {
    /// A hardware GPU: workgroup tiles staged in workgroup memory.
    Gpu,
    /// A software adapter (lavapipe, SwiftShader) running `lanes` invocations per SIMD group
    /// (its smallest subgroup size: SwiftShader 4, lavapipe 8 with AVX2).
    Software { lanes: u32 },
}

/// The tile for a product whose C has `rows` × `cols` elements and whose inner dimension is
/// `k`, on `target`.
///
/// Software adapters take the direct tiles, with the biggest block per thread whose workgroup
/// still fills a SIMD group (a narrower one leaves lanes idle): every load with a per-lane
/// address is a gather there, and a bigger block loads fewer values per multiply-add. The
/// widest block (16×16, 4 threads) is only for long products (K or the rows of C from
/// [`LONG_FROM`]): on the short ones of the MNIST step its few threads lost to the 16×8 block's
/// more (BENCHMARKS.md, "Kernel parameters").
pub fn choose_tile(rows: u32, cols: u32, k: u32, target: TileTarget) -> Tile {
    match target {
        TileTarget::Software { lanes } => {
            let long = k >= LONG_FROM || rows >= LONG_FROM;
            [DIRECT_WIDEST_TILE, DIRECT_WIDE_TILE]
                .into_iter()
                .filter(|t| long || *t != DIRECT_WIDEST_TILE)
                .find(|t| t.threads() >= lanes)
                .unwrap_or(DIRECT_TILE)
        }
        TileTarget::Gpu => {
            let large = rows.div_ceil(LARGE_TILE.m) * cols.div_ceil(LARGE_TILE.n);
            if large < SMALL_TILE_BELOW {
                SMALL_TILE
            } else {
                LARGE_TILE
            }
        }
    }
}

impl Tile {
    /// Threads per workgroup.
    pub const fn threads(&self) -> u32 {
        (self.m / self.block_m) * (self.n / self.block_n)
    }
}

/// `shaders/matmul_direct.wgsl` for a direct tile: each `{{...}}` line of the template written
/// out for its block of `block_m` × `block_n` (multiples of 4) values per thread.
pub(crate) fn direct_source(tile: Tile) -> String {
    let (bm, bn) = (tile.block_m, tile.block_n);
    let rows = 0..bm / 4;
    let cols = 0..bn / 4;
    let mut out = String::new();
    for line in DIRECT_TEMPLATE.lines() {
        let unrolled: Vec<String> = match line.trim() {
            "{{block}}" => vec![
                format!("const BLOCK_M: u32 = {bm}u;"),
                format!("const BLOCK_N: u32 = {bn}u;"),
            ],
            "{{row quads}}" => rows
                .clone()
                .flat_map(|q| {
                    let first = format!("vec4<u32>(i0 + {}u) + up", 4 * q);
                    [
                        format!("let rows{q} = min({first}, last_row);"),
                        format!("let ones{q} = ({first} == vec4<u32>(m)) & with_ones;"),
                        format!("var ao{q} = select(rows{q} * dims.lda, rows{q}, TRANS_A);"),
                    ]
                })
                .collect(),
            "{{column quads}}" => cols
                .clone()
                .flat_map(|p| {
                    [
                        format!("let cols{p} = min(vec4<u32>(j0 + {}u * sj) + up * sj, last_col);", 4 * p),
                        format!("var bo{p} = select(cols{p}, cols{p} * dims.ldb, TRANS_B);"),
                    ]
                })
                .collect(),
            "{{accumulators}}" => (0..bm)
                .flat_map(|r| cols.clone().map(move |p| format!("var c{r}_{p} = vec4<f32>(0.0);")))
                .collect(),
            "{{loads}}" => cols
                .clone()
                .map(|p| format!("let b{p} = vec4<f32>(b[bo{p}.x], b[bo{p}.y], b[bo{p}.z], b[bo{p}.w]);"))
                .chain(rows.clone().map(|q| {
                    format!(
                        "let a{q} = select(vec4<f32>(a[ao{q}.x], a[ao{q}.y], a[ao{q}.z], a[ao{q}.w]), \
                         vec4<f32>(1.0), ones{q});"
                    )
                }))
                .collect(),
            "{{multiply-adds}}" => (0..bm)
                .flat_map(|r| {
                    let a = format!("a{}.{}", r / 4, ["x", "y", "z", "w"][r as usize % 4]);
                    cols.clone().map(move |p| format!("c{r}_{p} += {a} * b{p};"))
                })
                .collect(),
            "{{advance}}" => rows
                .clone()
                .map(|q| format!("ao{q} += vec4<u32>(a_step);"))
                .chain(cols.clone().map(|p| format!("bo{p} += vec4<u32>(b_step);")))
                .collect(),
            "{{stores}}" => cols
                .clone()
                .map(|p| format!("store_row(i0 + r, j0 + {}u * sj, sj, m_out, c0_{p});", 4 * p))
                .collect(),
            "{{shift}}" => cols
                .clone()
                .flat_map(|p| (1..bm).map(move |r| format!("c{}_{p} = c{r}_{p};", r - 1)))
                .collect(),
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        for l in unrolled {
            out.push_str(indent);
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

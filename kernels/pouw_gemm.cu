// Fused int8 GEMM + per-tile transcript (docs/protocol.md section 6) and keyed-BLAKE3 tickets.
//
// Loaded at run time by kernels/cupy_backend.py with cupy.RawModule (NVRTC); also compiles
// offline with `nvcc -arch=sm_90 -c`. No header is included (NVRTC has no system headers),
// and every kernel is extern "C" so the Python side finds it by name.
//
// pouw_gemm_transcript: C'[i, j] = sum_k A'[i, k] * Bt'[j, k] for int8 A' (m x k) and
// Bt' = B'^T (n x k), exact int32 (|C'| <= 127^2 * 65536 < 2^31, no wrap can happen).
//   - A block of 256 threads (8 warps) owns a 128 x 128 output panel = 8 x 8 ticket tiles.
//     Warp w owns rows 32*(w/2) .. +32 and columns 64*(w%2) .. +64: 2 x 4 tiles of 16 x 16.
//   - The inner dimension is walked in chunks of 128 (= r, the transcript chunk). A chunk of
//     the A' panel and of the Bt' panel (16 KiB each) is staged in shared memory as
//     [16-byte k-slice][row][16 bytes]; the next chunk is prefetched into registers while
//     the tensor cores work on the current one.
//   - Tensor cores: mma.sync m16n8k32 s8 x s8 -> s32 (inline PTX, sm_80+; four m8n8k16 on
//     sm_75). Fragments are read straight from shared memory; with the layout above a
//     warp's 32 lanes read 128 contiguous bytes per load (no bank conflicts).
//   - After each chunk every thread XORs the 8 int32 accumulators it holds for each of its
//     warp's 8 tiles (the XOR is order-free, so the fragment layout is irrelevant), then
//     the warp reduces the 8 words across its 32 lanes with a transposed butterfly (9
//     shuffles for 8 tiles instead of 40). Lane (g = lane/4, t = lane%4) ends with w_c of
//     the warp's tile g and keeps transcript words t, t+4, t+8, t+12 of that tile in 4
//     registers: T[c % 16] = rotl32(T[c % 16], 13) ^ w_c happens in registers, nothing
//     partial ever goes to global memory. T and (optionally) C' are written once at the end.
//   - Tiles outside the matrix (m/16 or n/16 not a multiple of 8) read zero rows and are
//     not written.
//
// pouw_tickets: one thread per tile, HK(pow_key, u32(I) || u32(J) || T): keyed BLAKE3 of a
// 72-byte message = one chunk of two blocks (64 bytes with CHUNK_START|KEYED_HASH, then 8
// bytes zero-padded with CHUNK_END|ROOT|KEYED_HASH), counter 0; the digest is the first 32
// bytes of the root output. pouw_ticket_words is __host__ __device__ so the same code is
// checked on the CPU against the `blake3` package (tests/unit/test_cupy_backend.py).

typedef unsigned int pouw_u32;
typedef unsigned long long pouw_u64;   // sizes and offsets (no <cstddef> under NVRTC)

// Own 16- and 8-byte vectors (alignas, no CUDA vector headers needed): one 128-bit or
// 64-bit memory access each.
struct alignas(16) pouw_v4 {
    int x, y, z, w;
};
struct alignas(8) pouw_v2 {
    int x, y;
};

#define POUW_BM 128        // output rows per block
#define POUW_BN 128        // output columns per block
#define POUW_BK 128        // inner-dimension chunk = r = transcript chunk
#define POUW_THREADS 256   // 8 warps
#define POUW_FLAG_WRITE_C 1
#define POUW_FLAG_WRITE_T 2

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 750)
#error "pouw_gemm.cu needs int8 tensor cores: compute capability 7.5 or newer"
#endif

// ---------------------------------------------------------------------------------------
// Tensor-core step: c (16 x 8, int32) += a (16 x 32, int8, row-major) * b (32 x 8, int8,
// column-major). Fragment layout (PTX ISA, mma.m16n8k32 .s8), g = lane/4, t = lane%4:
//   a[0]: row g,   k = 4t..4t+3       a[1]: row g+8, k = 4t..4t+3
//   a[2]: row g,   k = 16+4t..        a[3]: row g+8, k = 16+4t..
//   b[0]: col g,   k = 4t..4t+3       b[1]: col g,   k = 16+4t..
//   c[0], c[1]: row g, cols 2t, 2t+1   c[2], c[3]: row g+8, cols 2t, 2t+1
// (4 int8 per 32-bit register, lowest k in the lowest byte.)
__device__ __forceinline__ void pouw_mma_16x8x32(int c[4], const pouw_u32 a[4], const pouw_u32 b[2])
{
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 800)
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(__CUDA_ARCH__)
    // sm_75: the same product as four m8n8k16 steps (rows g / g+8, k halves 0-15 / 16-31).
    asm("mma.sync.aligned.m8n8k16.row.col.s32.s8.s8.s32 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+r"(c[0]), "+r"(c[1]) : "r"(a[0]), "r"(b[0]));
    asm("mma.sync.aligned.m8n8k16.row.col.s32.s8.s8.s32 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+r"(c[2]), "+r"(c[3]) : "r"(a[1]), "r"(b[0]));
    asm("mma.sync.aligned.m8n8k16.row.col.s32.s8.s8.s32 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+r"(c[0]), "+r"(c[1]) : "r"(a[2]), "r"(b[1]));
    asm("mma.sync.aligned.m8n8k16.row.col.s32.s8.s8.s32 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+r"(c[2]), "+r"(c[3]) : "r"(a[3]), "r"(b[1]));
#endif
}

__device__ __forceinline__ pouw_u32 pouw_rotl13(pouw_u32 x)
{
    return (x << 13) | (x >> 19);
}

// One transposed-butterfly step: lanes that differ in bit `o` swap halves of v[0 .. 2h),
// so afterwards v[0 .. h) of a lane holds the pairwise XOR of the half named by that bit.
#define POUW_XSTEP(o, h)                                                        \
    {                                                                           \
        const bool up = (lane & (o)) != 0;                                      \
        _Pragma("unroll") for (int i = 0; i < (h); ++i) {                       \
            const pouw_u32 send = up ? v[i] : v[i + (h)];                       \
            const pouw_u32 keep = up ? v[i + (h)] : v[i];                       \
            v[i] = keep ^ __shfl_xor_sync(0xffffffffu, send, (o));              \
        }                                                                       \
    }

extern "C" __global__ void __launch_bounds__(POUW_THREADS)
pouw_gemm_transcript(const signed char* __restrict__ A,   // m x k, row-major
                     const signed char* __restrict__ Bt,  // n x k, row-major (B'^T)
                     int* __restrict__ C,                 // m x n int32 (if flags & WRITE_C)
                     pouw_u32* __restrict__ T,            // (m/16) x (n/16) x 16 (if flags & WRITE_T)
                     int m, int n, int k, int flags)
{
    // Chunk staging, layout [kk = 16-byte k-slice, 0..7][row, 0..127][16 bytes].
    __shared__ pouw_v4 sA4[POUW_BM * POUW_BK / 16];
    __shared__ pouw_v4 sB4[POUW_BN * POUW_BK / 16];
    const unsigned char* sA = reinterpret_cast<const unsigned char*>(sA4);
    const unsigned char* sB = reinterpret_cast<const unsigned char*>(sB4);

    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int wm = warp >> 1;   // warp rows    32*wm .. +32 of the panel
    const int wn = warp & 1;    // warp columns 64*wn .. +64 of the panel
    const int i0 = blockIdx.y * POUW_BM;
    const int j0 = blockIdx.x * POUW_BN;
    const int nchunks = k / POUW_BK;

    // Staging map: thread -> panel row (tid % 128) and four consecutive 16-byte k-slices
    // 4*(tid/128) .. +3: 64 contiguous bytes of one global row per thread; in shared memory
    // a warp's 32 rows of one slice are 512 contiguous bytes.
    const int srow = tid & (POUW_BM - 1);
    const int skk = (tid >> 7) * 4;
    const bool a_ok = (i0 + srow) < m;
    const bool b_ok = (j0 + srow) < n;
    const pouw_v4* gA = reinterpret_cast<const pouw_v4*>(A + (pouw_u64)(a_ok ? i0 + srow : 0) * (pouw_u64)k) + skk;
    const pouw_v4* gB = reinterpret_cast<const pouw_v4*>(Bt + (pouw_u64)(b_ok ? j0 + srow : 0) * (pouw_u64)k) + skk;
    const pouw_v4 zero4 = {0, 0, 0, 0};

    pouw_v4 ra[4], rb[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        ra[q] = a_ok ? gA[q] : zero4;
        rb[q] = b_ok ? gB[q] : zero4;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        sA4[(skk + q) * POUW_BM + srow] = ra[q];
        sB4[(skk + q) * POUW_BN + srow] = rb[q];
    }
    __syncthreads();

    int acc[2][8][4];
#pragma unroll
    for (int tr = 0; tr < 2; ++tr)
#pragma unroll
        for (int p = 0; p < 8; ++p)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[tr][p][e] = 0;

    // Transcript words t, t+4, t+8, t+12 of the warp's tile g.
    pouw_u32 tw[4] = {0u, 0u, 0u, 0u};

    for (int c = 0; c < nchunks; ++c) {
        const bool more = (c + 1) < nchunks;
        if (more) {   // prefetch the next chunk; its latency hides behind the MMAs below
            const int off = (c + 1) * (POUW_BK / 16);
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                ra[q] = a_ok ? gA[off + q] : zero4;
                rb[q] = b_ok ? gB[off + q] : zero4;
            }
        }

#pragma unroll
        for (int s = 0; s < POUW_BK / 32; ++s) {   // four k32 steps: slices 2s and 2s+1
            pouw_u32 af[2][4];
            pouw_u32 bf[8][2];
#pragma unroll
            for (int tr = 0; tr < 2; ++tr) {
                const unsigned char* pa = sA + ((2 * s) * POUW_BM + wm * 32 + tr * 16 + g) * 16 + t * 4;
                af[tr][0] = *reinterpret_cast<const pouw_u32*>(pa);
                af[tr][1] = *reinterpret_cast<const pouw_u32*>(pa + 8 * 16);
                af[tr][2] = *reinterpret_cast<const pouw_u32*>(pa + POUW_BM * 16);
                af[tr][3] = *reinterpret_cast<const pouw_u32*>(pa + POUW_BM * 16 + 8 * 16);
            }
#pragma unroll
            for (int p = 0; p < 8; ++p) {
                const unsigned char* pb = sB + ((2 * s) * POUW_BN + wn * 64 + p * 8 + g) * 16 + t * 4;
                bf[p][0] = *reinterpret_cast<const pouw_u32*>(pb);
                bf[p][1] = *reinterpret_cast<const pouw_u32*>(pb + POUW_BN * 16);
            }
#pragma unroll
            for (int tr = 0; tr < 2; ++tr)
#pragma unroll
                for (int p = 0; p < 8; ++p) pouw_mma_16x8x32(acc[tr][p], af[tr], bf[p]);
        }

        // w_c of the warp's 8 tiles: tile (tr, tc) = n8 pieces 2tc and 2tc+1 of row block tr.
        pouw_u32 v[8];
#pragma unroll
        for (int tr = 0; tr < 2; ++tr)
#pragma unroll
            for (int tc = 0; tc < 4; ++tc) {
                pouw_u32 x = 0u;
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    x ^= (pouw_u32)acc[tr][2 * tc][e] ^ (pouw_u32)acc[tr][2 * tc + 1][e];
                v[tr * 4 + tc] = x;
            }
        POUW_XSTEP(16, 4)   // v[i] now covers tile i + 4*bit4(lane)
        POUW_XSTEP(8, 2)    //               tile i + 4*bit4 + 2*bit3
        POUW_XSTEP(4, 1)    //               tile 4*bit4 + 2*bit3 + bit2 = g
        pouw_u32 w = v[0];
        w ^= __shfl_xor_sync(0xffffffffu, w, 2);
        w ^= __shfl_xor_sync(0xffffffffu, w, 1);   // every lane of group g: full w_c of tile g

        const bool mine = (c & 3) == t;            // slot c % 16 = t + 4 * ((c >> 2) & 3)
        const int qsel = (c >> 2) & 3;
#pragma unroll
        for (int q = 0; q < 4; ++q)
            if (mine && q == qsel) tw[q] = pouw_rotl13(tw[q]) ^ w;

        __syncthreads();   // every warp is done reading this chunk
        if (more) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                sA4[(skk + q) * POUW_BM + srow] = ra[q];
                sB4[(skk + q) * POUW_BN + srow] = rb[q];
            }
            __syncthreads();
        }
    }

    const int tiles_i = m >> 4;
    const int tiles_j = n >> 4;
    if (flags & POUW_FLAG_WRITE_T) {
        const int ti = (i0 + wm * 32 + (g >> 2) * 16) >> 4;
        const int tj = (j0 + wn * 64 + (g & 3) * 16) >> 4;
        if (ti < tiles_i && tj < tiles_j) {
            pouw_u32* out = T + ((pouw_u64)ti * (pouw_u64)tiles_j + (pouw_u64)tj) * 16;
#pragma unroll
            for (int q = 0; q < 4; ++q) out[t + 4 * q] = tw[q];
        }
    }
    if (flags & POUW_FLAG_WRITE_C) {
#pragma unroll
        for (int tr = 0; tr < 2; ++tr) {
            const int row = i0 + wm * 32 + tr * 16 + g;
#pragma unroll
            for (int p = 0; p < 8; ++p) {
                const int col = j0 + wn * 64 + p * 8 + 2 * t;
                if (col < n) {
                    if (row < m) {
                        const pouw_v2 lo = {acc[tr][p][0], acc[tr][p][1]};
                        *reinterpret_cast<pouw_v2*>(C + (pouw_u64)row * (pouw_u64)n + col) = lo;
                    }
                    if (row + 8 < m) {
                        const pouw_v2 hi = {acc[tr][p][2], acc[tr][p][3]};
                        *reinterpret_cast<pouw_v2*>(C + (pouw_u64)(row + 8) * (pouw_u64)n + col) = hi;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// BLAKE3 (one chunk, at most one 64-byte block after the first): enough for 72-byte tickets.

#define POUW_B3_CHUNK_START 1u
#define POUW_B3_CHUNK_END 2u
#define POUW_B3_ROOT 8u
#define POUW_B3_KEYED_HASH 16u

__host__ __device__ __forceinline__ pouw_u32 pouw_rotr(pouw_u32 x, int s)
{
    return (x >> s) | (x << (32 - s));
}

#define POUW_B3_G(a, b, c, d, mx, my)            \
    {                                            \
        st[a] = st[a] + st[b] + (mx);            \
        st[d] = pouw_rotr(st[d] ^ st[a], 16);    \
        st[c] = st[c] + st[d];                   \
        st[b] = pouw_rotr(st[b] ^ st[c], 12);    \
        st[a] = st[a] + st[b] + (my);            \
        st[d] = pouw_rotr(st[d] ^ st[a], 8);     \
        st[c] = st[c] + st[d];                   \
        st[b] = pouw_rotr(st[b] ^ st[c], 7);     \
    }

// One round with the message words already permuted for that round (s0 .. s15).
#define POUW_B3_ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
    {                                                                                      \
        POUW_B3_G(0, 4, 8, 12, mw[s0], mw[s1])                                             \
        POUW_B3_G(1, 5, 9, 13, mw[s2], mw[s3])                                             \
        POUW_B3_G(2, 6, 10, 14, mw[s4], mw[s5])                                            \
        POUW_B3_G(3, 7, 11, 15, mw[s6], mw[s7])                                            \
        POUW_B3_G(0, 5, 10, 15, mw[s8], mw[s9])                                            \
        POUW_B3_G(1, 6, 11, 12, mw[s10], mw[s11])                                          \
        POUW_B3_G(2, 7, 8, 13, mw[s12], mw[s13])                                           \
        POUW_B3_G(3, 4, 9, 14, mw[s14], mw[s15])                                           \
    }

// The compression function, truncated to the 8 words this use needs:
// out[i] = state[i] ^ state[i + 8] (the chaining value, and the first 32 output bytes).
__host__ __device__ __forceinline__ void pouw_blake3_compress(const pouw_u32 cv[8], const pouw_u32 mw[16],
                                                              pouw_u32 block_len, pouw_u32 flags,
                                                              pouw_u32 out[8])
{
    pouw_u32 st[16] = {
        cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
        0u, 0u, block_len, flags,   // counter low, counter high (always 0 here)
    };
    POUW_B3_ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    POUW_B3_ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
    POUW_B3_ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1)
    POUW_B3_ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6)
    POUW_B3_ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4)
    POUW_B3_ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7)
    POUW_B3_ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13)
    for (int i = 0; i < 8; ++i) out[i] = st[i] ^ st[i + 8];
}

// HK(key, msg) for the 72-byte ticket message msg = u32(I) || u32(J) || T[0..15]
// (18 little-endian words); key and digest as 8 little-endian words.
__host__ __device__ __forceinline__ void pouw_ticket_words(const pouw_u32 key[8], const pouw_u32 msg[18],
                                                           pouw_u32 digest[8])
{
    pouw_u32 cv[8];
    pouw_blake3_compress(key, msg, 64u, POUW_B3_CHUNK_START | POUW_B3_KEYED_HASH, cv);
    pouw_u32 last[16];
    last[0] = msg[16];
    last[1] = msg[17];
    for (int i = 2; i < 16; ++i) last[i] = 0u;
    pouw_blake3_compress(cv, last, 8u, POUW_B3_CHUNK_END | POUW_B3_ROOT | POUW_B3_KEYED_HASH, digest);
}

extern "C" __global__ void __launch_bounds__(256)
pouw_tickets(const pouw_u32* __restrict__ T,     // tiles x 16 transcript words, row-major tiles
             const pouw_u32* __restrict__ key,   // pow_key as 8 little-endian words
             pouw_u32* __restrict__ out,         // tiles x 8 digest words
             int tiles_i, int tiles_j)
{
    const pouw_u64 idx = (pouw_u64)blockIdx.x * (pouw_u64)blockDim.x + (pouw_u64)threadIdx.x;
    const pouw_u64 total = (pouw_u64)tiles_i * (pouw_u64)tiles_j;
    if (idx >= total) return;
    pouw_u32 kw[8];
    for (int i = 0; i < 8; ++i) kw[i] = key[i];
    pouw_u32 msg[18];
    msg[0] = (pouw_u32)(idx / (pouw_u64)tiles_j);
    msg[1] = (pouw_u32)(idx % (pouw_u64)tiles_j);
    const pouw_v4* t4 = reinterpret_cast<const pouw_v4*>(T + idx * 16);
    for (int q = 0; q < 4; ++q) {
        const pouw_v4 x = t4[q];
        msg[2 + 4 * q] = (pouw_u32)x.x;
        msg[3 + 4 * q] = (pouw_u32)x.y;
        msg[4 + 4 * q] = (pouw_u32)x.z;
        msg[5 + 4 * q] = (pouw_u32)x.w;
    }
    pouw_u32 d[8];
    pouw_ticket_words(kw, msg, d);
    for (int i = 0; i < 8; ++i) out[idx * 8 + i] = d[i];
}

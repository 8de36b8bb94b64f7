// irc HLS kernel library: the loop nests of every kernel kind, written once as templates.
//
// Each generated kernel (kernels/k*.cpp) defines a configuration struct C (shape constants, the
// parallelism factor P, the number types data_t/acc_t/store_t and the epilogue) and calls one
// of these templates from its top function, which carries the m_axi/s_axilite interface.
// Loops follow one pattern: burst loads into on-chip buffers (PIPELINE II=1), a compute loop
// pipelined at II=1 whose inner loop over P lanes is fully unrolled (the arrays it reads are
// partitioned so that P lanes read in the same cycle), and a store loop.
#ifndef IRC_HLS_H
#define IRC_HLS_H

#include <cmath>
#include <cstdint>

// Loop labels name loops in HLS reports; g++ would call them unused.
#pragma GCC diagnostic ignored "-Wunused-label"

#if __has_include(<hls_stream.h>)
#include <hls_stream.h>
namespace irc {
template <class T>
using stream = hls::stream<T>;
}
#else
#include <deque>
namespace irc {
// A FIFO with the hls::stream interface, for builds without the HLS headers (C simulation only).
template <class T>
class stream {
   public:
    void write(const T& v) { q_.push_back(v); }
    T read() {
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    bool empty() const { return q_.empty(); }

   private:
    std::deque<T> q_;
};
}  // namespace irc
#endif

namespace irc {

// P values moved together through a stream (one beat of a DATAFLOW channel).
template <class T, int P>
struct pack {
    T v[P];
};

// ------------------------------------------------------------------------------- dense (GEMM)
// y[M][N] = out(x[M][K] @ w[K][N] + bias[N] + res[M][N]); P output columns per cycle.
template <class C>
void dense(const typename C::store_t* x, const typename C::store_t* w, const typename C::store_t* bias,
           const typename C::store_t* res, typename C::store_t* y) {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    static_assert(C::N % C::P == 0, "the parallelism factor must divide N");
    data_t xbuf[C::M * C::K];
    data_t wbuf[C::K][C::P];
#pragma HLS ARRAY_PARTITION variable=wbuf dim=2 complete
    data_t bbuf[C::P];
#pragma HLS ARRAY_PARTITION variable=bbuf complete
    acc_t acc[C::P];
#pragma HLS ARRAY_PARTITION variable=acc complete
load_x:
    for (int i = 0; i < C::M * C::K; i++) {
#pragma HLS PIPELINE II=1
        xbuf[i] = C::load(x[i]);
    }
tile:
    for (int t = 0; t < C::N / C::P; t++) {
    load_w:
        for (int i = 0; i < C::K * C::P; i++) {
#pragma HLS PIPELINE II=1
            const int k = i / C::P, p = i % C::P;
            wbuf[k][p] = C::load(w[k * C::N + t * C::P + p]);
        }
    load_b:
        for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
            bbuf[p] = C::HAS_BIAS ? C::load(bias[t * C::P + p]) : data_t(0);
        }
    row:
        for (int m = 0; m < C::M; m++) {
        init:
            for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                acc[p] = acc_t(bbuf[p]);
            }
        mac:
            for (int k = 0; k < C::K; k++) {
#pragma HLS PIPELINE II=1
                const data_t xv = xbuf[m * C::K + k];
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc[p] += xv * wbuf[k][p];
                }
            }
        store:
            for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                const int o = m * C::N + t * C::P + p;
                acc_t v = acc[p];
                if (C::HAS_RES) v += C::load(res[o]);
                y[o] = C::store(C::out(v));
            }
        }
    }
}

// ------------------------------------------------------------------------------- conv (2-D)
// Tiled direct convolution, no im2col: one input image is held on chip, P output channels
// (of one group) are computed per tile, each output pixel accumulating CI/G*KH*KW taps at II=1.
template <class C>
void conv2d(const typename C::store_t* x, const typename C::store_t* w, const typename C::store_t* bias,
            const typename C::store_t* res, typename C::store_t* y) {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    const int CIG = C::CI / C::G, COG = C::CO / C::G, TAPS = CIG * C::KH * C::KW;
    const int IMG = C::CI * C::H * C::W;
    static_assert((C::CO / C::G) % C::P == 0, "the parallelism factor must divide the output channels per group");
    data_t img[IMG];
    data_t wt[C::P][TAPS];
#pragma HLS ARRAY_PARTITION variable=wt dim=1 complete
    data_t bt[C::P];
#pragma HLS ARRAY_PARTITION variable=bt complete
    acc_t acc[C::P];
#pragma HLS ARRAY_PARTITION variable=acc complete
batch:
    for (int n = 0; n < C::NB; n++) {
    load_x:
        for (int i = 0; i < IMG; i++) {
#pragma HLS PIPELINE II=1
            img[i] = C::load(x[n * IMG + i]);
        }
    tile:
        for (int t = 0; t < C::CO / C::P; t++) {
            const int co0 = t * C::P;
            const int g = co0 / COG;
        load_w:
            for (int i = 0; i < C::P * TAPS; i++) {
#pragma HLS PIPELINE II=1
                wt[i / TAPS][i % TAPS] = C::load(w[co0 * TAPS + i]);
            }
        load_b:
            for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                bt[p] = C::HAS_BIAS ? C::load(bias[co0 + p]) : data_t(0);
            }
        pixel:
            for (int o = 0; o < C::OH * C::OW; o++) {
                const int oh = o / C::OW, ow = o % C::OW;
            init:
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc[p] = acc_t(bt[p]);
                }
            mac:
                for (int i = 0; i < TAPS; i++) {
#pragma HLS PIPELINE II=1
                    const int ci = i / (C::KH * C::KW), kh = (i / C::KW) % C::KH, kw = i % C::KW;
                    const int ih = oh * C::SH - C::PT + kh * C::DH, iw = ow * C::SW - C::PL + kw * C::DW;
                    const bool inside = ih >= 0 && ih < C::H && iw >= 0 && iw < C::W;
                    const data_t xv = inside ? img[((g * CIG + ci) * C::H + ih) * C::W + iw] : data_t(0);
                    for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                        acc[p] += xv * wt[p][i];
                    }
                }
            store:
                for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                    const int oi = ((n * C::CO + co0 + p) * C::OH + oh) * C::OW + ow;
                    acc_t v = acc[p];
                    if (C::HAS_RES) v += C::load(res[oi]);
                    y[oi] = C::store(C::out(v));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------- pooling (2-D)
// Max or average over windows; P channel planes on chip, P outputs per cycle.
template <class C>
void pool2d(const typename C::store_t* x, typename C::store_t* y) {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    const int HW = C::H * C::W;
    static_assert(C::C % C::P == 0, "the parallelism factor must divide the channels");
    data_t plane[C::P][HW];
#pragma HLS ARRAY_PARTITION variable=plane dim=1 complete
batch:
    for (int n = 0; n < C::NB; n++) {
    tile:
        for (int t = 0; t < C::C / C::P; t++) {
            const int c0 = n * C::C + t * C::P;
        load_x:
            for (int i = 0; i < C::P * HW; i++) {
#pragma HLS PIPELINE II=1
                plane[i / HW][i % HW] = C::load(x[c0 * HW + i]);
            }
        pixel:
            for (int o = 0; o < C::OH * C::OW; o++) {
#pragma HLS PIPELINE II=1
                const int oh = o / C::OW, ow = o % C::OW;
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc_t sum = 0;
                    data_t best = C::lowest();
                    int count = 0;
                    bool any = false;
                    for (int kh = 0; kh < C::KH; kh++) {
                        for (int kw = 0; kw < C::KW; kw++) {
                            const int ih = oh * C::SH - C::PT + kh * C::DH, iw = ow * C::SW - C::PL + kw * C::DW;
                            const bool inside = ih >= 0 && ih < C::H && iw >= 0 && iw < C::W;
                            const bool padded = ih >= -C::PT && ih < C::H + C::PB && iw >= -C::PL && iw < C::W + C::PR;
                            if (inside) {
                                const data_t v = plane[p][ih * C::W + iw];
                                sum += v;
                                best = (!any || v > best) ? v : best;
                                any = true;
                            }
                            count += (C::COUNT_PAD ? padded : inside) ? 1 : 0;
                        }
                    }
                    data_t r;
                    if (C::AVG) r = count > 0 ? C::mean(sum, count) : data_t(0);
                    else r = best;
                    y[(c0 + p) * C::OH * C::OW + o] = C::store(r);
                }
            }
        }
    }
}

// Global max or average over all HW positions of each channel; P channels per cycle.
template <class C>
void global_pool(const typename C::store_t* x, typename C::store_t* y) {
    typedef typename C::data_t data_t;
    typedef typename C::acc_t acc_t;
    static_assert(C::C % C::P == 0, "the parallelism factor must divide the channels");
    acc_t sum[C::P];
#pragma HLS ARRAY_PARTITION variable=sum complete
    data_t best[C::P];
#pragma HLS ARRAY_PARTITION variable=best complete
batch:
    for (int n = 0; n < C::NB; n++) {
    tile:
        for (int t = 0; t < C::C / C::P; t++) {
            const int c0 = n * C::C + t * C::P;
        init:
            for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                sum[p] = 0;
                best[p] = C::load(x[(c0 + p) * C::HW]);
            }
        reduce:
            for (int i = 0; i < C::HW; i++) {
#pragma HLS PIPELINE II=1
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    const data_t v = C::load(x[(c0 + p) * C::HW + i]);
                    sum[p] += v;
                    best[p] = v > best[p] ? v : best[p];
                }
            }
        store:
            for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                y[c0 + p] = C::store(C::AVG ? C::mean(sum[p], C::HW) : best[p]);
            }
        }
    }
}

// ------------------------------------------------------------------------------- softmax
// Along an axis of extent LEN (stride INNER); exp and sums in float whatever the data type.
template <class C>
void softmax(const typename C::store_t* x, typename C::store_t* y) {
    float buf[C::LEN];
#pragma HLS ARRAY_PARTITION variable=buf cyclic factor=C::P
    static_assert(C::LEN % C::P == 0, "the parallelism factor must divide the axis");
rows:
    for (int r = 0; r < C::OUTER * C::INNER; r++) {
        const int base = (r / C::INNER) * C::LEN * C::INNER + r % C::INNER;
    load_x:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
            buf[c] = C::to_f(C::load(x[base + c * C::INNER]));
        }
        float mx = buf[0];
    max:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            mx = buf[c] > mx ? buf[c] : mx;
        }
        float sum = 0.0f;
    exp:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            buf[c] = std::exp(buf[c] - mx);
            sum += buf[c];
        }
    store:
        for (int c = 0; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
            y[base + c * C::INNER] = C::store(C::from_f(buf[c] / sum));
        }
    }
}

// ------------------------------------------------------------------------------- argmax
// Index (int64) of the largest element along the axis: the first of equal ones, or the last
// (LAST); a NaN beats every number.
template <class C>
void argmax(const typename C::store_t* x, int64_t* y) {
    typedef typename C::data_t data_t;
rows:
    for (int r = 0; r < C::OUTER * C::INNER; r++) {
        const int base = (r / C::INNER) * C::LEN * C::INNER + r % C::INNER;
        data_t best = C::load(x[base]);
        int64_t idx = 0;
    scan:
        for (int c = 1; c < C::LEN; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=C::P
            const data_t v = C::load(x[base + c * C::INNER]);
            bool take;
            if (C::is_nan(v)) take = C::LAST || !C::is_nan(best);
            else take = !C::is_nan(best) && (C::LAST ? !(v < best) : v > best);
            if (take) {
                best = v;
                idx = c;
            }
        }
        y[r] = idx;
    }
}

// ------------------------------------------------------------------------------- element-wise
// Stages of a DATAFLOW element-wise kernel: read (with broadcasting), compute, write.
template <class C, class Index>
void read_stream(const typename C::store_t* x, stream<pack<typename C::data_t, C::P> >& s) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
read:
    for (int i = 0; i < C::TOTAL / C::P; i++) {
#pragma HLS PIPELINE II=1
        pack<typename C::data_t, C::P> v;
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            v.v[p] = C::load(x[Index::at(i * C::P + p)]);
        }
        s.write(v);
    }
}

template <class C>
void write_stream(stream<pack<typename C::data_t, C::P> >& s, typename C::store_t* y) {
write:
    for (int i = 0; i < C::TOTAL / C::P; i++) {
#pragma HLS PIPELINE II=1
        const pack<typename C::data_t, C::P> v = s.read();
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            y[i * C::P + p] = C::store(v.v[p]);
        }
    }
}

// ------------------------------------------------------------------------------- int8
// The integer arithmetic of irc's quantization (irc/ir/quant_arith.py), bit for bit:
// int32 accumulators wrap modulo 2^32; requantize is clamp(zp + ((acc * M0 + 2^(shift-1)) >> shift))
// with a 64-bit product and an arithmetic shift (round half up).
inline int32_t wrap_add(int32_t a, int32_t b) { return int32_t(uint32_t(a) + uint32_t(b)); }

inline int64_t requantize(int32_t acc, int64_t m0, int shift, int64_t zp, int64_t lo, int64_t hi) {
    const int64_t y = ((int64_t(acc) * m0 + (int64_t(1) << (shift - 1))) >> shift) + zp;
    return y < lo ? lo : (y > hi ? hi : y);
}

// y[M][N] = requantize(bias[N] + sum_k (x[M][K] - XZP) * w[K][N]) per output column.
template <class C>
void qdense(const typename C::x_t* x, const int8_t* w, const int32_t* bias, const int32_t* mult,
            const int32_t* shift, typename C::y_t* y) {
    static_assert(C::N % C::P == 0, "the parallelism factor must divide N");
    int16_t xbuf[C::M * C::K];
    int8_t wbuf[C::K][C::P];
#pragma HLS ARRAY_PARTITION variable=wbuf dim=2 complete
    int32_t acc[C::P];
#pragma HLS ARRAY_PARTITION variable=acc complete
load_x:
    for (int i = 0; i < C::M * C::K; i++) {
#pragma HLS PIPELINE II=1
        xbuf[i] = int16_t(int(x[i]) - C::XZP);
    }
tile:
    for (int t = 0; t < C::N / C::P; t++) {
    load_w:
        for (int i = 0; i < C::K * C::P; i++) {
#pragma HLS PIPELINE II=1
            wbuf[i / C::P][i % C::P] = w[(i / C::P) * C::N + t * C::P + i % C::P];
        }
    row:
        for (int m = 0; m < C::M; m++) {
        init:
            for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                acc[p] = bias[t * C::P + p];
            }
        mac:
            for (int k = 0; k < C::K; k++) {
#pragma HLS PIPELINE II=1
                const int16_t xv = xbuf[m * C::K + k];
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc[p] = wrap_add(acc[p], int32_t(xv) * int32_t(wbuf[k][p]));
                }
            }
        store:
            for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                const int n = t * C::P + p;
                y[m * C::N + n] = typename C::y_t(requantize(acc[p], mult[n], shift[n], C::YZP, C::YMIN, C::YMAX));
            }
        }
    }
}

// Quantized direct convolution (padding holds the zero point, i.e. real zero).
template <class C>
void qconv2d(const typename C::x_t* x, const int8_t* w, const int32_t* bias, const int32_t* mult,
             const int32_t* shift, typename C::y_t* y) {
    const int CIG = C::CI / C::G, COG = C::CO / C::G, TAPS = CIG * C::KH * C::KW;
    const int IMG = C::CI * C::H * C::W;
    static_assert((C::CO / C::G) % C::P == 0, "the parallelism factor must divide the output channels per group");
    int16_t img[IMG];
    int8_t wt[C::P][TAPS];
#pragma HLS ARRAY_PARTITION variable=wt dim=1 complete
    int32_t acc[C::P];
#pragma HLS ARRAY_PARTITION variable=acc complete
batch:
    for (int n = 0; n < C::NB; n++) {
    load_x:
        for (int i = 0; i < IMG; i++) {
#pragma HLS PIPELINE II=1
            img[i] = int16_t(int(x[n * IMG + i]) - C::XZP);
        }
    tile:
        for (int t = 0; t < C::CO / C::P; t++) {
            const int co0 = t * C::P;
            const int g = co0 / COG;
        load_w:
            for (int i = 0; i < C::P * TAPS; i++) {
#pragma HLS PIPELINE II=1
                wt[i / TAPS][i % TAPS] = w[co0 * TAPS + i];
            }
        pixel:
            for (int o = 0; o < C::OH * C::OW; o++) {
                const int oh = o / C::OW, ow = o % C::OW;
            init:
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    acc[p] = bias[co0 + p];
                }
            mac:
                for (int i = 0; i < TAPS; i++) {
#pragma HLS PIPELINE II=1
                    const int ci = i / (C::KH * C::KW), kh = (i / C::KW) % C::KH, kw = i % C::KW;
                    const int ih = oh * C::SH - C::PT + kh * C::DH, iw = ow * C::SW - C::PL + kw * C::DW;
                    const bool inside = ih >= 0 && ih < C::H && iw >= 0 && iw < C::W;
                    const int16_t xv = inside ? img[((g * CIG + ci) * C::H + ih) * C::W + iw] : int16_t(0);
                    for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                        acc[p] = wrap_add(acc[p], int32_t(xv) * int32_t(wt[p][i]));
                    }
                }
            store:
                for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                    const int co = co0 + p;
                    y[((n * C::CO + co) * C::OH + oh) * C::OW + ow] =
                        typename C::y_t(requantize(acc[p], mult[co], shift[co], C::YZP, C::YMIN, C::YMAX));
                }
            }
        }
    }
}

// y = requantize(AM * (a - AZP) + BM * (b - BZP)), element-wise.
template <class C>
void qadd(const typename C::a_t* a, const typename C::b_t* b, typename C::y_t* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
add:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            const int64_t acc = int64_t(C::AM) * (int(a[i + p]) - C::AZP) + int64_t(C::BM) * (int(b[i + p]) - C::BZP);
            const int64_t r = ((acc * C::M0 + (int64_t(1) << (C::SH - 1))) >> C::SH) + C::YZP;
            y[i + p] = typename C::y_t(r < C::YMIN ? C::YMIN : (r > C::YMAX ? C::YMAX : r));
        }
    }
}

// Quantized global average pool: requantize(sum over HW of (x - XZP)); P channels per cycle.
template <class C>
void qglobal_pool(const typename C::x_t* x, typename C::y_t* y) {
    static_assert(C::C % C::P == 0, "the parallelism factor must divide the channels");
    int64_t sum[C::P];
#pragma HLS ARRAY_PARTITION variable=sum complete
batch:
    for (int n = 0; n < C::NB; n++) {
    tile:
        for (int t = 0; t < C::C / C::P; t++) {
            const int c0 = n * C::C + t * C::P;
        init:
            for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                sum[p] = 0;
            }
        reduce:
            for (int i = 0; i < C::HW; i++) {
#pragma HLS PIPELINE II=1
                for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
                    sum[p] += int(x[(c0 + p) * C::HW + i]) - C::XZP;
                }
            }
        store:
            for (int p = 0; p < C::P; p++) {
#pragma HLS PIPELINE II=1
                const int64_t r = ((sum[p] * C::M0 + (int64_t(1) << (C::SH - 1))) >> C::SH) + C::YZP;
                y[c0 + p] = typename C::y_t(r < C::YMIN ? C::YMIN : (r > C::YMAX ? C::YMAX : r));
            }
        }
    }
}

// float -> int8 at the edge of a quantized region: saturate(round_half_even(x / SCALE) + ZP), in float.
template <class C>
void quantize(const float* x, typename C::y_t* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
quant:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            float r = std::nearbyint(x[i + p] / C::scale());
            if (std::isnan(r)) r = 0.0f;
            r += float(C::ZP);
            y[i + p] = typename C::y_t(r < float(C::LO) ? C::LO : (r > float(C::HI) ? C::HI : r));
        }
    }
}

// int8 -> float: (q - ZP) * SCALE in float.
template <class C>
void dequantize(const typename C::x_t* x, float* y) {
    static_assert(C::TOTAL % C::P == 0, "the parallelism factor must divide the element count");
dequant:
    for (int i = 0; i < C::TOTAL; i += C::P) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < C::P; p++) {
#pragma HLS UNROLL
            y[i + p] = float(int64_t(x[i + p]) - C::ZP) * C::scale();
        }
    }
}

}  // namespace irc

#endif  // IRC_HLS_H

// The update (BN_UPDATE): a thread per channel hands dγ = Σdy·x̂ and dβ = Σdy (kept by
// BN_GRAD_SUMS) to the optimizer, γ and β changed in place, after the input gradient has read
// them.

@group(0) @binding(0) var<storage, read_write> p: array<f32>;    // γ, β
@group(0) @binding(1) var<storage, read> keep: array<f32>;
@group(0) @binding(2) var<storage, read_write> slots: array<f32>;
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

fn update(at: u32, grad: f32, d: Dims) {
    let o = d.opt;
    let s = d.slot_base + at;
    var s0 = 0.0;
    var s1 = 0.0;
    if OPTIM != OPTIM_SGD {
        s0 = slots[s];
    }
    if OPTIM == OPTIM_ADAM {
        s1 = slots[o.slot_stride + s];
    }
    let u = optimizer_update(OPTIM, o, step.lr, step.c1, step.c2, p[at], grad, s0, s1);
    if OPTIM != OPTIM_SGD {
        slots[s] = u.s0;
    }
    if OPTIM == OPTIM_ADAM {
        slots[o.slot_stride + s] = u.s1;
    }
    p[at] = u.p;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let ch = gid.y * groups.x * WG + gid.x;
    if ch >= d.c {
        return;
    }
    update(ch, keep[3u * d.c + ch], d);
    update(d.c + ch, keep[2u * d.c + ch], d);
}

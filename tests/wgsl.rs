//! Every shader variant the engine builds (`soma::gpu::kernel_specs`: the step's, evaluation's,
//! prediction's and the op runner's pipelines, each with the override constants it is built
//! with) through naga's strict validation and WebGPU's default limits, without a GPU adapter;
//! and source checks for what Chrome's compiler, Tint, rejects although naga accepts it.

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ShaderStage, StorageAccess};
use soma::gpu::kernels::Slot;
use soma::gpu::{KernelSpec, kernel_specs};

/// The module with its overrides resolved, or naga's message.
fn compile(spec: &KernelSpec) -> Result<naga::Module, String> {
    let src = &spec.source;
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    // No optional capability: only what every WebGPU implementation must accept.
    let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .map_err(|e| e.emit_to_string(src))?;
    let mut constants = naga::back::PipelineConstants::default();
    for &(name, value) in &spec.constants {
        constants.insert(name.to_string(), value);
    }
    // Resolves the overrides and validates the result again (an unknown constant is an error).
    let (resolved, _) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((ShaderStage::Compute, "main")),
        &constants,
    )
    .map_err(|e| format!("override constants {:?}: {e}", spec.constants))?;
    Ok(resolved.into_owned())
}

/// What WebGPU's default limits and the bind group layout of `spec` require of `module`.
fn check_limits(spec: &KernelSpec, module: &naga::Module) -> Result<(), String> {
    // wgpu's defaults are WebGPU's: what a browser grants without asking for more.
    let limits = wgpu::Limits::default();
    let entry = module
        .entry_points
        .iter()
        .find(|e| e.name == "main" && e.stage == ShaderStage::Compute)
        .ok_or("no compute entry point `main`")?;
    let [x, y, z] = entry.workgroup_size;
    let max = [
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroup_size_y,
        limits.max_compute_workgroup_size_z,
    ];
    if x > max[0] || y > max[1] || z > max[2] {
        return Err(format!("workgroup size {x}×{y}×{z}, over {max:?}"));
    }
    if x * y * z > limits.max_compute_invocations_per_workgroup {
        return Err(format!(
            "{} invocations per workgroup, over {}",
            x * y * z,
            limits.max_compute_invocations_per_workgroup
        ));
    }
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| format!("layout: {e}"))?;
    let mut workgroup_bytes = 0u64;
    let mut storage = 0usize;
    let mut bound = vec![false; spec.slots.len()];
    for (_, var) in module.global_variables.iter() {
        match var.space {
            AddressSpace::WorkGroup => workgroup_bytes += layouter[var.ty].size as u64,
            AddressSpace::Storage { access } => {
                storage += 1;
                let b = var
                    .binding
                    .as_ref()
                    .ok_or("storage variable without binding")?;
                let name = var.name.as_deref().unwrap_or("?");
                let slot = spec
                    .slots
                    .get(b.binding as usize)
                    .filter(|_| b.group == 0)
                    .ok_or(format!(
                        "`{name}` at @group({}) @binding({}), outside the layout's {} slots",
                        b.group,
                        b.binding,
                        spec.slots.len()
                    ))?;
                // A read-only layout entry accepts only a `read` variable (WebGPU's
                // validation of the pipeline against its layout).
                if *slot != Slot::Write && access.contains(StorageAccess::STORE) {
                    return Err(format!("`{name}` is read_write but bound as {slot:?}"));
                }
                bound[b.binding as usize] = true;
            }
            AddressSpace::Uniform => return Err("uniform buffers: the layout has none".into()),
            _ => {}
        }
    }
    if workgroup_bytes > limits.max_compute_workgroup_storage_size as u64 {
        return Err(format!(
            "{workgroup_bytes} bytes of workgroup memory, over {}",
            limits.max_compute_workgroup_storage_size
        ));
    }
    if storage as u32 > limits.max_storage_buffers_per_shader_stage {
        return Err(format!(
            "{storage} storage buffers, over {}",
            limits.max_storage_buffers_per_shader_stage
        ));
    }
    Ok(())
}

#[test]
fn every_kernel_variant_passes_strict_validation_within_webgpu_default_limits() {
    let specs = kernel_specs();
    // The engine builds at least the eight step pipelines and the two op-runner ones.
    assert!(specs.len() >= 10, "{} specs", specs.len());
    let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), specs.len(), "kernel names are unique");
    let failures: Vec<String> = specs
        .iter()
        .filter_map(|spec| {
            let result = compile(spec).and_then(|m| check_limits(spec, &m));
            result.err().map(|e| format!("kernel `{}`: {e}", spec.name))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The checks must fail where they should: a variant that is wrong in each way is rejected.
#[test]
fn the_validation_rejects_what_webgpu_would() {
    let good = kernel_specs()
        .into_iter()
        .find(|s| s.name == "gather")
        .expect("the gather kernel");
    let mut unknown = good.clone();
    unknown.constants.push(("NO_SUCH_CONSTANT", 1.0));
    assert!(compile(&unknown).is_err(), "an unknown override constant");
    let mut too_wide = good.clone();
    too_wide.constants = vec![("WG", 1024.0)];
    let m = compile(&too_wide).expect("compiles");
    let e = check_limits(&too_wide, &m).expect_err("1024 invocations");
    assert!(
        e.contains("invocations") || e.contains("workgroup size"),
        "{e}"
    );
    let mut narrow = good.clone();
    narrow.slots.pop();
    let m = compile(&narrow).expect("compiles");
    assert!(
        check_limits(&narrow, &m).is_err(),
        "a binding outside the layout"
    );
    let mut bad = good.clone();
    bad.source.push_str("\nfn broken() -> f32 { return 1u; }\n");
    assert!(compile(&bad).is_err(), "a type error");
}

/// Decimal and hex float literals of `src` (comments skipped), as written.
fn float_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        let b = code.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let starts = (b[i].is_ascii_digit()
                || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
            if !starts {
                i += 1;
                continue;
            }
            let hex = b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
            let mut j = if hex { i + 2 } else { i };
            while j < b.len() {
                let c = b[j];
                let exp_sign = matches!(c, b'+' | b'-')
                    && matches!(b[j - 1], b'e' | b'E' | b'p' | b'P')
                    && !(hex && matches!(b[j - 1], b'e' | b'E'));
                if c.is_ascii_alphanumeric() || c == b'.' || exp_sign {
                    j += 1;
                } else {
                    break;
                }
            }
            let token = &code[i..j];
            let is_float = if hex {
                token.contains('.') || token.contains(['p', 'P'])
            } else {
                token.contains(['.', 'e', 'E']) || token.ends_with(['f', 'h'])
            };
            if is_float {
                out.push(token.to_string());
            }
            i = j;
        }
    }
    out
}

/// The exact magnitude of a WGSL float literal (suffix dropped), as f64 (enough to compare with
/// f32's range).
fn literal_value(token: &str) -> f64 {
    let t = token.trim_end_matches(['f', 'h']);
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let (mantissa, exp) = hex.split_once(['p', 'P']).unwrap_or((hex, "0"));
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut v = 0f64;
        for c in int.chars() {
            v = v * 16.0 + c.to_digit(16).expect("hex digit") as f64;
        }
        let mut scale = 1.0 / 16.0;
        for c in frac.chars() {
            v += c.to_digit(16).expect("hex digit") as f64 * scale;
            scale /= 16.0;
        }
        v * 2f64.powi(exp.parse::<i32>().expect("exponent"))
    } else {
        t.parse::<f64>()
            .unwrap_or_else(|e| panic!("literal {token}: {e}"))
    }
}

/// Tint (Chrome) rejects a float literal whose exact value lies outside f32's range, even where it
/// would round to the largest f32 (`-3.40282347e38` did; naga rounds it and accepts).
#[test]
fn float_literals_lie_within_f32_range() {
    // The scanner finds what it should: these would be rejected.
    assert_eq!(
        float_literals(
            "let a = -3.40282347e38; let b = 0x1.fffffep+127f; // 9.9e99\nlet c = x1e5 + 2.0e-3f;"
        ),
        ["3.40282347e38", "0x1.fffffep+127f", "2.0e-3f"]
    );
    assert!(literal_value("3.40282347e38") > f32::MAX as f64);
    assert_eq!(literal_value("0x1.fffffep+127f"), f32::MAX as f64);
    assert_eq!(literal_value("0x1.000000p-7f"), 2f64.powi(-7));
    let mut bad = Vec::new();
    let mut seen = 0;
    for spec in kernel_specs() {
        for token in float_literals(&spec.source) {
            seen += 1;
            if literal_value(&token) > f32::MAX as f64 {
                bad.push(format!("kernel `{}`: {token}", spec.name));
            }
        }
    }
    assert!(seen > 0, "the sources have float literals to check");
    assert!(bad.is_empty(), "literals outside f32's range: {bad:?}");
}

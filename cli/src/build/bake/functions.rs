//! The bake functions expressions may call (`lower`, `upper`, `join`, `replace`, `trimprefix`,
//! `trimsuffix`, `equal`, `notequal`).

use hcl::eval::{Context as EvalContext, FuncArgs, FuncDef, ParamType};

pub(super) fn declare_functions(ctx: &mut EvalContext) {
    fn s(args: &FuncArgs, i: usize) -> String {
        args[i].as_str().unwrap_or_default().to_owned()
    }
    let strs = |n: usize| {
        let mut b = FuncDef::builder();
        for _ in 0..n {
            b = b.param(ParamType::String);
        }
        b
    };
    ctx.declare_func(
        "lower",
        strs(1).build(|a| Ok(s(&a, 0).to_lowercase().into())),
    );
    ctx.declare_func(
        "upper",
        strs(1).build(|a| Ok(s(&a, 0).to_uppercase().into())),
    );
    ctx.declare_func(
        "replace",
        strs(3).build(|a| Ok(s(&a, 0).replace(&s(&a, 1), &s(&a, 2)).into())),
    );
    ctx.declare_func(
        "trimprefix",
        strs(2).build(|a| {
            Ok(s(&a, 0)
                .strip_prefix(&s(&a, 1))
                .map_or_else(|| s(&a, 0), str::to_owned)
                .into())
        }),
    );
    ctx.declare_func(
        "trimsuffix",
        strs(2).build(|a| {
            Ok(s(&a, 0)
                .strip_suffix(&s(&a, 1))
                .map_or_else(|| s(&a, 0), str::to_owned)
                .into())
        }),
    );
    ctx.declare_func(
        "join",
        FuncDef::builder()
            .param(ParamType::String)
            .param(ParamType::array_of(ParamType::Any))
            .build(|a| {
                let items: Vec<String> = a[1]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                Ok(items.join(&s(&a, 0)).into())
            }),
    );
    let any2 = || {
        FuncDef::builder()
            .param(ParamType::Any)
            .param(ParamType::Any)
    };
    ctx.declare_func("equal", any2().build(|a| Ok((a[0] == a[1]).into())));
    ctx.declare_func("notequal", any2().build(|a| Ok((a[0] != a[1]).into())));
}

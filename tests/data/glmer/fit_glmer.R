# Fit every data set in manifest.csv with lme4::glmer (nAGQ = 1, 10 and 25) and write glmer_results.csv.
# Run in this directory: Rscript fit_glmer.R   (Debian: apt-get install r-base-core r-cran-lme4)
# Model: y ~ x + treat + (1 | g); binomial 0/1 (kind "binary"), cbind(y, n - y) (kind "trials"), poisson.
# Both stages use bobyqa with tight tolerances and PIRLS runs to a relative change of 1e-14, so that the
# stored values are lme4's optimum, not its default stopping point; everything else is glmer's default:
# calc.derivs = TRUE, vcov() from the finite-difference Hessian of the deviance in (theta, beta)
# (use.hessian = TRUE), isSingular() with tol = 1e-4 on theta (the group SD).
# Output, long format: dataset, nagq, kind, name, value, where kind is
#   fixef, se     fixed effects and their SEs (vcov(fit), lme4's default)
#   se_rx         SEs from vcov(fit, use.hessian = FALSE) (the PIRLS decomposition at the optimum)
#   vc            var(g) = theta^2
#   theta         theta (the SD of the random intercept)
#   deviance      -2 * logLik(fit) (Laplace: aic-based; nAGQ > 1: deviance-residual-based, as lme4)
#   singular      isSingular(fit) as 0/1
#   grad_max      largest |gradient| of the deviance at the optimum (lme4's finite differences)
#   warning       lme4's convergence messages and warnings (value: the text, commas replaced)
suppressPackageStartupMessages(library(lme4))
man <- read.csv("manifest.csv", stringsAsFactors = FALSE)
ctrl <- glmerControl(optimizer = c("bobyqa", "bobyqa"), tolPwrss = 1e-14,
                     optCtrl = list(rhoend = 1e-11, maxfun = 1e5),
                     check.conv.singular = "ignore")
out <- list()
add <- function(ds, nagq, kind, name, value) {
  v <- if (is.character(value)) gsub("[,\n]", ";", value) else sprintf("%.17g", value)
  out[[length(out) + 1]] <<- data.frame(dataset = ds, nagq = nagq, kind = kind, name = name, value = v,
                                        stringsAsFactors = FALSE)
}
for (i in seq_len(nrow(man))) {
  d <- read.csv(man$file[i])
  d$g <- factor(d$g)
  fam <- if (man$family[i] == "poisson") poisson else binomial
  form <- if (man$kind[i] == "trials") cbind(y, n - y) ~ x + treat + (1 | g) else y ~ x + treat + (1 | g)
  for (nagq in if (man$name[i] %in% c("bin_bal", "poi_bal", "tri_bal", "bin_rare")) c(1, 10, 25) else c(1, 10)) {
    msgs <- character(0)
    fit <- withCallingHandlers(glmer(form, data = d, family = fam, nAGQ = nagq, control = ctrl),
                               warning = function(w) { msgs <<- c(msgs, conditionMessage(w));
                                                       invokeRestart("muffleWarning") })
    msgs <- c(msgs, fit@optinfo$conv$lme4$messages)
    fe <- fixef(fit)
    V <- withCallingHandlers(vcov(fit), warning = function(w) { msgs <<- c(msgs, conditionMessage(w));
                                                                   invokeRestart("muffleWarning") })
    se <- sqrt(diag(as.matrix(V)))
    se_rx <- sqrt(diag(as.matrix(suppressWarnings(vcov(fit, use.hessian = FALSE)))))
    for (k in seq_along(fe)) {
      add(man$name[i], nagq, "fixef", names(fe)[k], fe[k])
      add(man$name[i], nagq, "se", names(fe)[k], se[k])
      add(man$name[i], nagq, "se_rx", names(fe)[k], se_rx[k])
    }
    th <- getME(fit, "theta")
    add(man$name[i], nagq, "vc", "var(g)", th[[1]]^2)
    add(man$name[i], nagq, "theta", "g.(Intercept)", th[[1]])
    add(man$name[i], nagq, "deviance", "deviance", -2 * as.numeric(logLik(fit)))
    add(man$name[i], nagq, "singular", "isSingular", as.integer(isSingular(fit)))
    add(man$name[i], nagq, "grad_max", "grad_max", max(abs(fit@optinfo$derivs$gradient)))
    for (m in unique(msgs)) add(man$name[i], nagq, "warning", "warning", m)
  }
}
res <- do.call(rbind, out)
write.csv(res, "glmer_results.csv", row.names = FALSE, quote = FALSE)
cat("R", R.version$major, R.version$minor, "lme4", as.character(packageVersion("lme4")), "\n")
cat("wrote", nrow(res), "rows\n")

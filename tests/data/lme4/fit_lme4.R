# Fit every data set in manifest.csv with lme4 (REML and ML) and write lme4_results.csv.
# Run in this directory: Rscript fit_lme4.R   (Debian: apt-get install r-base-core r-cran-lme4)
# The optimiser runs with tight tolerances so that the stored values are lme4's optimum, not its default
# stopping point; isSingular() uses its default tol = 1e-4 on the relative standard deviations (theta).
# Output, long format: dataset, reml (1/0), kind, name, value, where kind is
#   fixef, se        fixed effects and their SEs (names as lme4 prints them, in column order)
#   vc               variance components: var(<group>) ... and var(residual); with a random slope on x
#                    also var(<group>:x) (slope variance) and cov(<group>:x) (covariance of intercept and slope)
#   theta            lme4's theta (relative standard deviations)
#   crit             REML criterion (reml = 1) or deviance (reml = 0), i.e. -2 * logLik
#   loglik           logLik
#   singular         isSingular(fit) as 0/1
#   crit_default_start  random-slope models only: the criterion of the fit from lme4's default start
# Random-slope models are fitted from several starts (lme4's default (1, 0, 1) first) and the fit with the
# lowest criterion is kept (a later start only when lower by more than 1e-10): near a singular covariance
# matrix lme4's optimiser can stop at a point that is a local minimum in its Cholesky parametrisation but
# not over the covariance matrices (e.g. rs_near_b: the intercept SD at its bound 0 with the correlation on
# the wrong side); crit_default_start records where the default start stops.
suppressPackageStartupMessages(library(lme4))
man <- read.csv("manifest.csv", stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "nloptwrap",
                    optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 1e-14,
                                   ftol_rel = 1e-15, maxeval = 100000),
                    check.conv.singular = "ignore", calc.derivs = FALSE)
slope_starts <- list(c(1, 0, 1), c(1, -1, 1), c(1, 1, 1), c(0.1, -1, 0.1), c(0.1, 1, 0.1))
out <- list()
add <- function(ds, reml, kind, name, value) {
  out[[length(out) + 1]] <<- data.frame(dataset = ds, reml = as.integer(reml), kind = kind, name = name,
                                        value = sprintf("%.17g", value), stringsAsFactors = FALSE)
}
for (i in seq_len(nrow(man))) {
  d <- read.csv(man$file[i], stringsAsFactors = FALSE)
  for (col in c("g", "instructor", "centre", "rep", "method", "reason")) {
    if (col %in% names(d)) d[[col]] <- factor(d[[col]])
  }
  groups <- strsplit(man$groups[i], "/")[[1]]
  for (reml in c(TRUE, FALSE)) {
    fit <- lmer(as.formula(man$rformula[i]), data = d, REML = reml, control = ctrl)
    if (!is.na(man$slope[i]) && nzchar(man$slope[i])) {
      add(man$name[i], reml, "crit_default_start", if (reml) "REML" else "deviance", -2 * as.numeric(logLik(fit)))
      for (s in slope_starts[-1]) {
        alt <- lmer(as.formula(man$rformula[i]), data = d, REML = reml, control = ctrl, start = list(theta = s))
        if (-2 * as.numeric(logLik(alt)) < -2 * as.numeric(logLik(fit)) - 1e-10) fit <- alt
      }
    }
    fe <- fixef(fit)
    se <- sqrt(diag(as.matrix(vcov(fit))))
    for (k in seq_along(fe)) {
      add(man$name[i], reml, "fixef", names(fe)[k], fe[k])
      add(man$name[i], reml, "se", names(fe)[k], se[k])
    }
    vc <- as.data.frame(VarCorr(fit))
    for (k in seq_len(nrow(vc))) {
      grp <- vc$grp[k]
      v1 <- vc$var1[k]
      v2 <- vc$var2[k]
      nm <- if (grp == "Residual") "var(residual)" else if (grp == "centre:rep") "var(rep)" else
        if (!is.na(v2)) paste0("cov(", grp, ":", v2, ")") else
        if (!is.na(v1) && v1 != "(Intercept)") paste0("var(", grp, ":", v1, ")") else paste0("var(", grp, ")")
      add(man$name[i], reml, "vc", nm, vc$vcov[k])
    }
    th <- getME(fit, "theta")
    for (k in seq_along(th)) add(man$name[i], reml, "theta", names(th)[k], th[k])
    add(man$name[i], reml, "crit", if (reml) "REML" else "deviance", -2 * as.numeric(logLik(fit)))
    add(man$name[i], reml, "loglik", "logLik", as.numeric(logLik(fit)))
    add(man$name[i], reml, "singular", "isSingular", as.integer(isSingular(fit)))
  }
}
res <- do.call(rbind, out)
write.csv(res, "lme4_results.csv", row.names = FALSE, quote = FALSE)
cat("R", R.version$major, R.version$minor, "lme4", as.character(packageVersion("lme4")), "\n")
cat("wrote", nrow(res), "rows\n")

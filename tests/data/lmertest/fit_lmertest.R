# Satterthwaite df of lmerTest for every data set in manifest.csv (REML and ML); writes lmertest_results.csv.
# Run in this directory: Rscript fit_lmertest.R   (needs lme4, lmerTest, numDeriv)
# The optimiser runs with tight tolerances (as in ../lme4/fit_lme4.R) so that the df are evaluated at lme4's
# optimum, not at its default stopping point: near the boundary lmerTest's df depend strongly on where the
# optimiser stopped (ri6x10_s1457: df of treat 3.50 at the optimum, 4.31 with lmerControl() defaults).
# Output, long format: dataset, reml (1/0), kind, name, value, where kind is
#   estimate, se, df  per fixed effect (lmerTest's summary(fit)$coefficients; df = Satterthwaite)
#   theta             lme4's theta (relative SD of the group intercept)
#   sigma2            residual variance
#   singular          isSingular(fit) (tol 1e-4) as 0/1
#   nobs, p           number of observations and of fixed effects (residual df of the LM: nobs - p)
#   vcov_varpar       lmerTest's 2 H^-1 in its parameters (theta, sigma): names tt, ts, ss
#   jac_theta         max |d vcov(beta) / d theta| (lmerTest's Jac_list[[1]]): 0 at theta = 0
#   jac_sigma         max |d vcov(beta) / d sigma| (Jac_list[[2]])
#   contest_df        df of the 1-df contrast tests (contest1D(fit, L)): the same as df, checked
#   warnings          number of warnings lmer/lmerTest raised (the texts go to stdout)
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
man <- read.csv("manifest.csv", stringsAsFactors = FALSE)
ctrl <- lmerControl(optimizer = "nloptwrap",
                    optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-15, xtol_rel = 1e-14,
                                   ftol_rel = 1e-15, maxeval = 100000),
                    check.conv.singular = "ignore", calc.derivs = FALSE)
out <- list()
add <- function(ds, reml, kind, name, value) {
  out[[length(out) + 1]] <<- data.frame(dataset = ds, reml = as.integer(reml), kind = kind, name = name,
                                        value = sprintf("%.17g", value), stringsAsFactors = FALSE)
}
for (i in seq_len(nrow(man))) {
  d <- read.csv(man$file[i], stringsAsFactors = FALSE)
  d$g <- factor(d$g)
  for (reml in c(TRUE, FALSE)) {
    nwarn <- 0
    fit <- withCallingHandlers(
      lmerTest::lmer(as.formula(man$rformula[i]), data = d, REML = reml, control = ctrl),
      warning = function(w) {
        nwarn <<- nwarn + 1
        cat(man$name[i], "REML =", reml, "warning:", conditionMessage(w), "\n")
        invokeRestart("muffleWarning")
      })
    co <- summary(fit)$coefficients
    for (k in seq_len(nrow(co))) {
      nm <- rownames(co)[k]
      add(man$name[i], reml, "estimate", nm, co[k, "Estimate"])
      add(man$name[i], reml, "se", nm, co[k, "Std. Error"])
      add(man$name[i], reml, "df", nm, co[k, "df"])
      L <- numeric(nrow(co)); L[k] <- 1
      add(man$name[i], reml, "contest_df", nm, contest1D(fit, L)$df)
    }
    add(man$name[i], reml, "theta", names(getME(fit, "theta"))[1], getME(fit, "theta")[1])
    add(man$name[i], reml, "sigma2", "sigma2", sigma(fit)^2)
    add(man$name[i], reml, "singular", "isSingular", as.integer(isSingular(fit)))
    add(man$name[i], reml, "nobs", "nobs", nobs(fit))
    add(man$name[i], reml, "p", "p", length(fixef(fit)))
    V <- fit@vcov_varpar
    add(man$name[i], reml, "vcov_varpar", "tt", V[1, 1])
    add(man$name[i], reml, "vcov_varpar", "ts", V[1, 2])
    add(man$name[i], reml, "vcov_varpar", "ss", V[2, 2])
    add(man$name[i], reml, "jac_theta", "max_abs", max(abs(fit@Jac_list[[1]])))
    add(man$name[i], reml, "jac_sigma", "max_abs", max(abs(fit@Jac_list[[2]])))
    add(man$name[i], reml, "warnings", "n", nwarn)
  }
}
res <- do.call(rbind, out)
write.csv(res, "lmertest_results.csv", row.names = FALSE, quote = FALSE)
cat("R", R.version$major, R.version$minor, "lme4", as.character(packageVersion("lme4")),
    "lmerTest", as.character(packageVersion("lmerTest")), "numDeriv", as.character(packageVersion("numDeriv")), "\n")
cat("wrote", nrow(res), "rows\n")

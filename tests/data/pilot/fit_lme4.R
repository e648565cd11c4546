# Reference fits of the dietox pilot (tests/data/pilot/dietox.csv) by lme4, for
# tests/estimators/test_pilot_fit.py. Run from the repository root:
#   Rscript tests/data/pilot/fit_lme4.R
# Writes tests/data/pilot/lme4_dietox.csv (fixed effects, variance components, REML criterion; named as
# simstudy names them) and tests/data/pilot/lme4_dietox_ranef.csv (the conditional modes, lme4's ranef()).
suppressPackageStartupMessages(library(lme4))

here <- "tests/data/pilot"
d <- read.csv(file.path(here, "dietox.csv"))
d$Pig <- factor(d$Pig)
d$Litter <- factor(d$Litter)
d$Evit <- factor(d$Evit)
d$Cu <- factor(d$Cu)

models <- list(
  ri = Weight ~ Time + (1 | Pig),
  nested = Weight ~ Time + (1 | Litter/Pig),
  nested_cov = Weight ~ Time + Evit + Cu + (1 | Litter/Pig),
  slope = Weight ~ Time + (1 + Time | Pig)
)
ctrl <- lmerControl(optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12))

fixed_name <- function(n) {
  n <- sub("^\\(Intercept\\)$", "Intercept", n)
  n <- sub("^Evit([0-9]+)$", "C(Evit)[T.\\1]", n)
  sub("^Cu([0-9]+)$", "C(Cu)[T.\\1]", n)
}
group_name <- function(g) sub("^Pig:Litter$", "Pig", g)

rows <- list()
ranefs <- list()
for (m in names(models)) {
  fit <- lmer(models[[m]], data = d, REML = TRUE, control = ctrl)
  fe <- fixef(fit)
  rows[[length(rows) + 1]] <- data.frame(model = m, param = fixed_name(names(fe)), value = unname(fe))
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) {
    g <- group_name(vc$grp[i])
    if (g == "Residual") {
      p <- "var(residual)"
    } else if (is.na(vc$var2[i]) && vc$var1[i] == "(Intercept)") {
      p <- sprintf("var(%s)", g)
    } else if (is.na(vc$var2[i])) {
      p <- sprintf("var(%s:%s)", g, vc$var1[i])
    } else {
      p <- sprintf("cov(%s:%s)", g, vc$var2[i])
    }
    rows[[length(rows) + 1]] <- data.frame(model = m, param = p, value = vc$vcov[i])
  }
  rows[[length(rows) + 1]] <- data.frame(model = m, param = "REMLcrit", value = REMLcrit(fit))
  re <- ranef(fit)
  for (g in names(re)) {
    r <- re[[g]]
    for (term in colnames(r)) {
      level <- sub(":.*$", "", rownames(r))  # Pig:Litter levels are "pig:litter"; pig ids are unique
      ranefs[[length(ranefs) + 1]] <- data.frame(model = m, group = group_name(g), level = level,
                                                 term = sub("^\\(Intercept\\)$", "Intercept", term),
                                                 value = r[[term]])
    }
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path(here, "lme4_dietox.csv"), row.names = FALSE)
write.csv(do.call(rbind, ranefs), file.path(here, "lme4_dietox_ranef.csv"), row.names = FALSE)
cat(sprintf("lme4 %s, R %s\n", packageVersion("lme4"), getRversion()))
print(out, digits = 10)

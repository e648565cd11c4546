# GEE reference for tests/estimators/test_gee.py: geepack fits and, at geepack's estimates, the small-sample
# corrections of the sandwich computed here by plain per-cluster matrix algebra (n_i x n_i matrices).
# Run in this directory: Rscript fit_gee.R   (needs geepack; writes gee_results.csv)
# Neither saws nor geesmv (the R packages with these corrections) is packaged for Debian, so the corrections
# below are this script's own implementation of the published formulas, not a package's:
#   robust  B^-1 (sum_i U_i U_i') B^-1,  U_i = D_i' V_i^-1 r_i,  B = sum_i D_i' V_i^-1 D_i
#   md      Mancl & DeRouen (2001): r_i -> (I - H_i)^-1 r_i,   H_i = D_i B^-1 D_i' V_i^-1
#   kc      Kauermann & Carroll (2001): r_i -> (I - H_i)^-1/2 r_i, the principal square root, computed as
#           V_i^1/2 (I - Ht_i)^-1/2 V_i^-1/2 with the symmetric Ht_i = V_i^-1/2 D_i B^-1 D_i' V_i^-1/2
#   fg      Fay & Graubard (2001): U_i -> diag((1 - min(0.75, diag(B_i B^-1)))^-1/2) U_i, B_i = D_i' V_i^-1 D_i
#   df_fg   Fay & Graubard's estimated df d-hat of each coefficient (their Section 3, as geex's
#           correct_by_fay_df(version = 1)): with the pK x pK matrices G = I - [B_1; ...; B_K] B^-1 [I ... I],
#           M = blockdiag(H_i B^-1 l l' B^-1 H_i'), C = G' M G, Phi = blockdiag(B_i):
#           tr(Phi C)^2 / tr((Phi C)^2); for the fg correction (H_i its diagonal) and the robust one (H_i = I)
# Output, long format: dataset, corstr, kind, name, value, where kind is
#   coef, se_geepack           geeglm's coefficients and its sandwich SEs (std.err = "san.se")
#   alpha                      geepack's exchangeable correlation (0 for independence)
#   se_robust, se_md, se_kc, se_fg, df_fg_fg, df_fg_robust   this script's, at geepack's coef and alpha
suppressPackageStartupMessages(library(geepack))
man <- read.csv("manifest.csv", stringsAsFactors = FALSE)
out <- list()
add <- function(ds, corstr, kind, name, value) {
  out[[length(out) + 1]] <<- data.frame(dataset = ds, corstr = corstr, kind = kind, name = name,
                                        value = sprintf("%.17g", value), stringsAsFactors = FALSE)
}
msqrt <- function(M, power) {  # power of a symmetric positive definite matrix
  if (any(!is.finite(M))) stop("matrix square root of a non-finite matrix")
  e <- eigen(M, symmetric = TRUE)
  e$vectors %*% diag(e$values^power, nrow = length(e$values)) %*% t(e$vectors)
}
fg_df <- function(Bl, B, Hl, l) {
  K <- length(Bl); p <- nrow(B); Binv <- solve(B)
  G <- diag(p * K) - do.call(rbind, Bl) %*% Binv %*% do.call(cbind, rep(list(diag(p)), K))
  M <- matrix(0, p * K, p * K); Phi <- M
  for (i in seq_len(K)) {
    idx <- (i - 1) * p + seq_len(p)
    M[idx, idx] <- Hl[[i]] %*% Binv %*% l %*% t(l) %*% Binv %*% t(Hl[[i]])
    Phi[idx, idx] <- Bl[[i]]
  }
  PC <- Phi %*% t(G) %*% M %*% G
  sum(diag(PC))^2 / sum(diag(PC %*% PC))
}
for (i in seq_len(nrow(man))) {
  d <- read.csv(man$file[i])
  d <- d[order(d$cluster), ]
  fam <- if (man$family[i] == "binomial") binomial() else poisson()
  for (corstr in c("exchangeable", "independence")) {
    fit <- geeglm(as.formula(man$formula[i]), id = cluster, data = d, family = fam, corstr = corstr,
                  control = geese.control(epsilon = 1e-13, maxit = 200))
    beta <- coef(fit)
    alpha <- if (corstr == "exchangeable") unname(fit$geese$alpha) else 0
    nm <- names(beta); nm[nm == "(Intercept)"] <- "Intercept"
    add(man$name[i], corstr, "coef", nm, beta)
    add(man$name[i], corstr, "se_geepack", nm, sqrt(diag(fit$geese$vbeta)))
    add(man$name[i], corstr, "alpha", "alpha", alpha)
    X <- model.matrix(as.formula(man$formula[i]), d)
    mu <- as.vector(fam$linkinv(X %*% beta))
    v <- fam$variance(mu); dmu <- fam$mu.eta(X %*% beta)
    ids <- split(seq_len(nrow(d)), d$cluster)
    pieces <- lapply(ids, function(rows) {
      n <- length(rows)
      D <- X[rows, , drop = FALSE] * as.vector(dmu[rows])
      R <- matrix(alpha, n, n); diag(R) <- 1
      V <- diag(sqrt(v[rows]), n) %*% R %*% diag(sqrt(v[rows]), n)
      list(D = D, V = V, Vinv = solve(V), r = d$y[rows] - mu[rows])
    })
    Bl <- lapply(pieces, function(z) t(z$D) %*% z$Vinv %*% z$D)
    B <- Reduce(`+`, Bl); Binv <- solve(B); p <- ncol(X)
    meat <- function(G) Binv %*% Reduce(`+`, lapply(G, function(g) g %*% t(g))) %*% Binv
    U <- lapply(pieces, function(z) t(z$D) %*% z$Vinv %*% z$r)
    md <- lapply(pieces, function(z) {
      H <- z$D %*% Binv %*% t(z$D) %*% z$Vinv
      t(z$D) %*% z$Vinv %*% solve(diag(nrow(H)) - H, z$r)
    })
    kc <- lapply(pieces, function(z) {
      Vh <- msqrt(z$V, 0.5); Vmh <- msqrt(z$V, -0.5)
      Ht <- Vmh %*% z$D %*% Binv %*% t(z$D) %*% Vmh
      t(z$D) %*% z$Vinv %*% Vh %*% msqrt(diag(nrow(Ht)) - Ht, -0.5) %*% Vmh %*% z$r
    })
    Hfg <- lapply(Bl, function(Bi) diag((1 - pmin(0.75, diag(Bi %*% Binv)))^-0.5, nrow = p))
    fg <- Map(function(H, u) H %*% u, Hfg, U)
    add(man$name[i], corstr, "se_robust", nm, sqrt(diag(meat(U))))
    add(man$name[i], corstr, "se_md", nm, sqrt(diag(meat(md))))
    add(man$name[i], corstr, "se_kc", nm, sqrt(diag(meat(kc))))
    add(man$name[i], corstr, "se_fg", nm, sqrt(diag(meat(fg))))
    eye <- rep(list(diag(p)), length(Bl))
    for (k in seq_len(p)) {
      l <- matrix(0, p, 1); l[k] <- 1
      add(man$name[i], corstr, "df_fg_fg", nm[k], fg_df(Bl, B, Hfg, l))
      add(man$name[i], corstr, "df_fg_robust", nm[k], fg_df(Bl, B, eye, l))
    }
  }
}
res <- do.call(rbind, out)
write.csv(res, "gee_results.csv", row.names = FALSE)
cat(sprintf("R %s, geepack %s: %d rows\n", getRversion(), packageVersion("geepack"), nrow(res)))

# SoftPrompt build entry point for PowerShell (same verbs as build.sh). Kernels, the emulator and apt installs
# need Linux: on other systems this builds and tests the managed code, and kernel-dependent tests skip.
param([Parameter(Position = 0)][string]$Verb = "build", [Parameter(ValueFromRemainingArguments = $true)][string[]]$Rest)
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$config = if ($env:CONFIG) { $env:CONFIG } else { "Release" }
function Invoke-Bash { param([string[]]$Arguments) & bash ./build.sh @Arguments; exit $LASTEXITCODE }
if ($IsLinux -and (Get-Command bash -ErrorAction SilentlyContinue)) { Invoke-Bash (@($Verb) + $Rest) }
switch ($Verb) {
  "restore" { dotnet restore Engine.sln }
  "build"   { dotnet build Engine.sln -c $config --nologo }
  "kernels" { Write-Error "kernels: needs Linux with nvcc (run ./build.sh kernels)" }
  "test"    { dotnet build Engine.sln -c $config --nologo; & "tests/SoftPrompt.Tests/bin/$config/net10.0/SoftPrompt.Tests" --progress off --show-test-results failed @Rest; exit $LASTEXITCODE }
  "test-fast" { dotnet build Engine.sln -c $config --nologo; & "tests/SoftPrompt.Tests/bin/$config/net10.0/SoftPrompt.Tests" --progress off --show-test-results failed --filter "TestCategory!=Slow" @Rest; exit $LASTEXITCODE }
  "bench"   { dotnet run -c Release --project benchmarks/SoftPrompt.Benchmarks -- @Rest }
  "demo"    { dotnet run -c $config --project src/SoftPrompt.Cli -- demo @Rest }
  "bundle"  { Write-Error "bundle: linux-x64 only (run ./build.sh bundle)" }
  default   { Write-Error "usage: ./build.ps1 restore|build|kernels|test|test-fast|bench|demo|bundle" }
}
